// Internal interface of the cached-attention (decode) kernel: one unit of
// split-K work, built for each instruction set in attention_decode.simd.cpp and
// driven by attention_forward_cached in attention_decode.cpp.
#pragma once

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/simd.h"

namespace ropepp {

// Keys scored together before the online-softmax update of a chunk.
inline constexpr int kDecodeKeyBlock = 32;

// Prepared query rows of one key/value head against the cached keys
// [key_begin, key_end) of that head.
//
// Scores are kept in log2 units: the rows are already multiplied by
// scale * log2(e), so probabilities are 2^(score - max). The chunk writes its
// partial softmax state; merging chunks of the same row is the caller's job.
struct DecodeChunk {
  const float* rows = nullptr;  // [n_rows][head_dim]: rotated, turned, noised and scaled queries
  int n_rows = 0;
  int head_dim = 0;

  const int64_t* key_limits = nullptr;     // [n_rows]: row r attends only to keys j < key_limits[r]
  const int32_t* row_segments = nullptr;   // [n_rows], or null for no segment mask
  const int32_t* key_segments = nullptr;   // indexed by absolute key index; null with row_segments

  CacheType type = CacheType::kF32;
  const void* keys = nullptr;    // first token of this key/value head
  const void* values = nullptr;
  int64_t token_stride = 0;      // elements between consecutive tokens
  int64_t key_begin = 0;
  int64_t key_end = 0;

  float* acc = nullptr;       // out [n_rows][head_dim]: sum over keys of 2^(s - max) * v
  float* row_max = nullptr;   // out [n_rows]: max score; -inf when the row saw no key
  float* row_sum = nullptr;   // out [n_rows]: sum over keys of 2^(s - max)
  float* scores = nullptr;        // scratch [n_rows][kDecodeKeyBlock]
  float* block_buffer = nullptr;  // scratch [kDecodeKeyBlock][head_dim]: keys or values converted from bf16
};

ROPEPP_SIMD_DECLARE(void, decode_chunk, (const DecodeChunk& chunk))

}  // namespace ropepp
