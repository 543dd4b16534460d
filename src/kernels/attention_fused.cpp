// TEMPORARY: forwards the fused API to the double reference until the tiled
// kernels land. Replaced by the kernel work; do not build on its speed.
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "kernels/attention.h"

namespace ropepp {
namespace {

std::vector<double> widen(const float* x, size_t n) { return std::vector<double>(x, x + n); }

}  // namespace

void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v, float* out,
                       float* lse) {
  const HeadLayout& l = args.layout;
  const size_t nq = static_cast<size_t>(args.n_queries * l.n_query_heads * l.head_dim);
  const size_t nk = static_cast<size_t>(args.n_keys * l.n_kv_heads * l.head_dim);
  const size_t no = static_cast<size_t>(args.n_queries * l.n_attention_heads() * l.head_dim);
  std::vector<double> o(no), s(static_cast<size_t>(args.n_queries * l.n_attention_heads()));
  attention_forward_reference(args, widen(q, nq).data(), widen(k, nk).data(), widen(v, nk).data(), o.data(), s.data());
  for (size_t i = 0; i < no; ++i) out[i] = static_cast<float>(o[i]);
  if (lse) for (size_t i = 0; i < s.size(); ++i) lse[i] = static_cast<float>(s[i]);
}

void attention_backward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* d_out, float* d_q, float* d_k, float* d_v) {
  const HeadLayout& l = args.layout;
  const size_t nq = static_cast<size_t>(args.n_queries * l.n_query_heads * l.head_dim);
  const size_t nk = static_cast<size_t>(args.n_keys * l.n_kv_heads * l.head_dim);
  const size_t no = static_cast<size_t>(args.n_queries * l.n_attention_heads() * l.head_dim);
  std::vector<double> dq(nq), dk(nk), dv(nk);
  attention_backward_reference(args, widen(q, nq).data(), widen(k, nk).data(), widen(v, nk).data(),
                               widen(d_out, no).data(), dq.data(), dk.data(), dv.data());
  for (size_t i = 0; i < nq; ++i) d_q[i] = static_cast<float>(dq[i]);
  for (size_t i = 0; i < nk; ++i) { d_k[i] = static_cast<float>(dk[i]); d_v[i] = static_cast<float>(dv[i]); }
}

}  // namespace ropepp
