// Fused prefill attention: the public entry points. They validate the
// arguments, rotate queries and keys once, and hand the tiled work to the
// build of attention_prefill.simd.cpp for the active SIMD target. The backward
// turns the kernels' gradients with respect to rotated vectors back into
// gradients with respect to q and k before rotation.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/attention_prefill.h"

namespace ropepp {
namespace {

void check_fused_args(const AttentionArgs& args) {
  args.validate();
  ROPEPP_CHECK(args.key_positions != nullptr, "fused prefill attention needs key positions");
}

// Copies x ([n_tokens][n_heads][d]) and rotates the copy by the tokens' positions.
std::vector<float> rotated_copy(const RopeTable& rope, const int32_t* positions, int64_t n_tokens, int n_heads,
                                const float* x) {
  std::vector<float> result(x, x + n_tokens * n_heads * rope.head_dim());
  rope_rotate(rope, positions, n_tokens, n_heads, result.data());
  return result;
}

}  // namespace

void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v, float* out,
                       float* lse) {
  check_fused_args(args);
  const HeadLayout& layout = args.layout;
  const std::vector<float> q_rot =
      rotated_copy(*args.rope, args.query_positions, args.n_queries, layout.n_query_heads, q);
  const std::vector<float> k_rot = rotated_copy(*args.rope, args.key_positions, args.n_keys, layout.n_kv_heads, k);

  std::vector<float> lse_scratch;
  if (lse == nullptr) {
    lse_scratch.resize(static_cast<size_t>(args.n_queries * layout.n_attention_heads()));
    lse = lse_scratch.data();
  }

  PrefillForward problem;
  problem.args = &args;
  problem.q_rot = q_rot.data();
  problem.k_rot = k_rot.data();
  problem.v = v;
  problem.out = out;
  problem.lse = lse;
  ROPEPP_SIMD_SELECT(prefill_forward)(problem);
}

void attention_backward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* d_out, float* d_q, float* d_k, float* d_v) {
  check_fused_args(args);
  ROPEPP_CHECK(out != nullptr && lse != nullptr, "the fused backward needs the forward's out and lse");
  const HeadLayout& layout = args.layout;
  const std::vector<float> q_rot =
      rotated_copy(*args.rope, args.query_positions, args.n_queries, layout.n_query_heads, q);
  const std::vector<float> k_rot = rotated_copy(*args.rope, args.key_positions, args.n_keys, layout.n_kv_heads, k);

  PrefillBackward problem;
  problem.args = &args;
  problem.q_rot = q_rot.data();
  problem.k_rot = k_rot.data();
  problem.v = v;
  problem.out = out;
  problem.lse = lse;
  problem.d_out = d_out;
  problem.d_q_rot = d_q;
  problem.d_k_rot = d_k;
  problem.d_v = d_v;
  ROPEPP_SIMD_SELECT(prefill_backward)(problem);

  // The gradient before rotation is the transpose of the rotation applied to
  // the gradient after it. rope_rotate_inverse applies that transpose, which
  // under YaRN's magnitude factor is not the inverse.
  rope_rotate_inverse(*args.rope, args.query_positions, args.n_queries, layout.n_query_heads, d_q);
  rope_rotate_inverse(*args.rope, args.key_positions, args.n_keys, layout.n_kv_heads, d_k);
}

}  // namespace ropepp
