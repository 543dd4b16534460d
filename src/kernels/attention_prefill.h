// Internal interface between the fused prefill entry points
// (attention_fused.cpp) and their per-instruction-set builds
// (attention_prefill.simd.cpp).
//
// The entry points rotate queries and keys once, so the tiled kernels work on
// rotated vectors only. Shapes (d = head_dim, H = n_query_heads,
// G = n_kv_heads, A = n_attention_heads):
//   q_rot        [n_queries][H][d]   rotated real queries
//   k_rot        [n_keys][G][d]      rotated keys
//   v            [n_keys][G][d]
//   out, d_out   [n_queries][A][d]
//   lse          [n_queries][A]
#pragma once

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/simd.h"

namespace ropepp {

// Queries per tile. The query rows of one tile are stacked over every
// attention head of a key/value group (real and imaginary alike), so a tile
// has group_size() * kPrefillQueryBlock rows and one GEMM scores them all.
// On one AMD Zen 4 core at T = 2048 with 8 query heads, 4 key/value heads and
// head_dim 128, 128 ran about 7% faster than 64 for vanilla RoPE and the same
// for EH and EC. A key block of 256 gave no gain over 128.
constexpr int64_t kPrefillQueryBlock = 128;
// Keys per tile.
constexpr int64_t kPrefillKeyBlock = 128;

struct PrefillForward {
  const AttentionArgs* args = nullptr;
  const float* q_rot = nullptr;
  const float* k_rot = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  float* lse = nullptr;  // never null here: the entry point supplies scratch
};

struct PrefillBackward {
  const AttentionArgs* args = nullptr;
  const float* q_rot = nullptr;
  const float* k_rot = nullptr;
  const float* v = nullptr;
  const float* out = nullptr;
  const float* lse = nullptr;
  const float* d_out = nullptr;
  float* d_q_rot = nullptr;  // [n_queries][H][d], written: gradient with respect to q_rot
  float* d_k_rot = nullptr;  // [n_keys][G][d], written: gradient with respect to k_rot
  float* d_v = nullptr;      // [n_keys][G][d], written
};

ROPEPP_SIMD_DECLARE(void, prefill_forward, (const PrefillForward& problem))
ROPEPP_SIMD_DECLARE(void, prefill_backward, (const PrefillBackward& problem))

}  // namespace ropepp
