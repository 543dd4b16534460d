// TEMPORARY: plain-loop cached attention and attention maps until the decode
// kernels land.
#include <cmath>
#include <limits>
#include <vector>

#include "core/bf16.h"
#include "core/rng.h"
#include "kernels/attention.h"

namespace ropepp {
namespace {

float load(const KVCacheView& c, const void* base, int64_t index) {
  return c.type == CacheType::kF32 ? static_cast<const float*>(base)[index]
                                   : bf16_to_float(static_cast<const bf16_t*>(base)[index]);
}

}  // namespace

void attention_forward_cached(const AttentionArgs& args, const float* q, const KVCacheView& cache, float* out,
                              float* lse) {
  args.validate();
  const HeadLayout& l = args.layout;
  const int d = l.head_dim, half = d / 2, nh = l.n_attention_heads();
  const float scale = args.effective_scale();
  std::vector<float> c(half), s(half), qr(d), score(args.n_keys);
  for (int64_t i = 0; i < args.n_queries; ++i) {
    args.rope->cos_sin(args.query_positions[i], c.data(), s.data());
    for (int h = 0; h < nh; ++h) {
      const float* x = q + (i * l.n_query_heads + l.query_head_of(h)) * d;
      for (int n = 0; n < half; ++n) {
        qr[n] = x[n] * c[n] - x[n + half] * s[n];
        qr[n + half] = x[n + half] * c[n] + x[n] * s[n];
      }
      if (l.is_imaginary_head(h)) {
        for (int n = 0; n < half; ++n) { float a = qr[n]; qr[n] = qr[n + half]; qr[n + half] = -a; }
      }
      const NoiseSide side = l.is_imaginary_head(h) ? NoiseSide::kImaginary : NoiseSide::kReal;
      if (args.noise.active() && args.noise.side == side)
        for (int e = 0; e < d; ++e)
          qr[e] += static_cast<float>(args.noise.stddev * gaussian_at(args.noise.seed, h, (args.query_offset + i) * d + e));
      const int kvh = l.kv_head_of(h);
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < args.n_keys; ++j) {
        score[j] = -std::numeric_limits<float>::infinity();
        if (!args.visible(i, j)) continue;
        float dot = 0;
        for (int e = 0; e < d; ++e) dot += qr[e] * load(cache, cache.keys, kvh * cache.head_stride + j * cache.token_stride + e);
        score[j] = dot * scale;
        mx = std::max(mx, score[j]);
      }
      float* o = out + (i * nh + h) * d;
      for (int e = 0; e < d; ++e) o[e] = 0;
      if (mx == -std::numeric_limits<float>::infinity()) { if (lse) lse[i * nh + h] = mx; continue; }
      double sum = 0;
      for (int64_t j = 0; j < args.n_keys; ++j) { score[j] = std::exp(score[j] - mx); sum += score[j]; }
      for (int64_t j = 0; j < args.n_keys; ++j) {
        if (score[j] == 0) continue;
        for (int e = 0; e < d; ++e) o[e] += score[j] / sum * load(cache, cache.values, kvh * cache.head_stride + j * cache.token_stride + e);
      }
      if (lse) lse[i * nh + h] = mx + std::log(sum);
    }
  }
}

void attention_probabilities(const AttentionArgs& args, const float* q, const float* k, const std::vector<int>& heads,
                             float* probs) {
  const HeadLayout& l = args.layout;
  const size_t nq = args.n_queries * l.n_query_heads * l.head_dim, nk = args.n_keys * l.n_kv_heads * l.head_dim;
  std::vector<double> qd(q, q + nq), kd(k, k + nk), vd(nk, 0.0);
  std::vector<double> out(args.n_queries * l.n_attention_heads() * l.head_dim);
  std::vector<double> all(static_cast<size_t>(l.n_attention_heads()) * args.n_queries * args.n_keys);
  attention_forward_reference(args, qd.data(), kd.data(), vd.data(), out.data(), nullptr, all.data());
  const size_t block = args.n_queries * args.n_keys;
  for (size_t h = 0; h < heads.size(); ++h)
    for (size_t x = 0; x < block; ++x) probs[h * block + x] = static_cast<float>(all[heads[h] * block + x]);
}

}  // namespace ropepp
