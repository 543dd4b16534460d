#include "train/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace ropepp::train {

// Parallel regions only pay off above this many elements (smaller loops are
// dominated by the cost of waking the threads).
constexpr int64_t kParallelThreshold = 1 << 14;

template <typename T>
void embedding_forward(const int32_t* tokens, int64_t n, const T* weight, int64_t c, T* out) {
#pragma omp parallel for schedule(static) if (n * c > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) std::copy_n(weight + static_cast<int64_t>(tokens[i]) * c, c, out + i * c);
}

template <typename T>
void embedding_backward(const int32_t* tokens, int64_t n, const T* dout, int64_t c, T* dweight) {
  // Sequential over tokens so repeated tokens sum in a fixed order (bit-identical resume).
  for (int64_t i = 0; i < n; ++i) {
    T* row = dweight + static_cast<int64_t>(tokens[i]) * c;
    const T* d = dout + i * c;
    for (int64_t e = 0; e < c; ++e) row[e] += d[e];
  }
}

template <typename T>
void rmsnorm_forward(const T* x, const T* weight, int64_t n, int64_t c, double eps, T* out, T* rstd) {
#pragma omp parallel for schedule(static) if (n * c > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * c;
    double sum = 0.0;
    for (int64_t e = 0; e < c; ++e) sum += static_cast<double>(row[e]) * row[e];
    const T r = static_cast<T>(1.0 / std::sqrt(sum / static_cast<double>(c) + eps));
    rstd[i] = r;
    T* y = out + i * c;
    for (int64_t e = 0; e < c; ++e) y[e] = row[e] * r * weight[e];
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* rstd, const T* dout, int64_t n, int64_t c, T* dx,
                      T* dweight) {
  // With y = w * x * r and r = (mean(x^2) + eps)^(-1/2):
  //   dx = r * (dy * w) - r^3 / C * x * sum(dy * w * x)
#pragma omp parallel for schedule(static) if (n * c > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * c;
    const T* d = dout + i * c;
    double dot = 0.0;
    for (int64_t e = 0; e < c; ++e) dot += static_cast<double>(d[e]) * weight[e] * row[e];
    const double r = rstd[i];
    const T coefficient = static_cast<T>(r * r * r * dot / static_cast<double>(c));
    T* out = dx + i * c;
    for (int64_t e = 0; e < c; ++e) out[e] = static_cast<T>(r) * d[e] * weight[e] - coefficient * row[e];
  }

  // dweight[e] = sum_i dy[i,e] * x[i,e] * r[i], split by columns so every sum
  // runs over rows in the same order whatever the thread count.
  constexpr int64_t kColumnBlock = 64;
#pragma omp parallel for schedule(static) if (n * c > kParallelThreshold)
  for (int64_t block = 0; block < (c + kColumnBlock - 1) / kColumnBlock; ++block) {
    const int64_t begin = block * kColumnBlock, end = std::min(c, begin + kColumnBlock);
    T sums[kColumnBlock] = {};
    for (int64_t i = 0; i < n; ++i) {
      const T r = rstd[i];
      for (int64_t e = begin; e < end; ++e) sums[e - begin] += dout[i * c + e] * x[i * c + e] * r;
    }
    for (int64_t e = begin; e < end; ++e) dweight[e] += sums[e - begin];
  }
}

template <typename T>
void linear_forward(const T* x, const T* weight, int64_t n, int64_t in, int64_t out_features, T* out,
                    MatmulPrecision precision) {
  matmul(false, true, n, out_features, in, T(1), x, in, weight, in, T(0), out, out_features, precision);
}

template <typename T>
void linear_backward(const T* x, const T* weight, const T* dout, int64_t n, int64_t in, int64_t out_features,
                     T* dx, bool accumulate_dx, T* dweight, MatmulPrecision precision) {
  matmul(false, false, n, in, out_features, T(1), dout, out_features, weight, in, accumulate_dx ? T(1) : T(0), dx, in,
       precision);
  matmul(true, false, out_features, in, n, T(1), dout, out_features, x, in, T(1), dweight, in, precision);
}

template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* h) {
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i) {
    const T g = gate[i];
    h[i] = g / (T(1) + std::exp(-g)) * up[i];
  }
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dh, int64_t count, T* dgate, T* dup) {
  // silu'(g) = s * (1 + g * (1 - s)) with s = sigmoid(g).
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i) {
    const T g = gate[i];
    const T s = T(1) / (T(1) + std::exp(-g));
    dgate[i] = dh[i] * up[i] * s * (T(1) + g * (T(1) - s));
    dup[i] = dh[i] * g * s;
  }
}

template <typename T>
void attention_layer_forward(const HeadLayout& layout, const RopeTable& rope, int64_t n_sequences, int64_t seq_len,
                             const int32_t* positions, const int32_t* segments, const T* q, const T* k, const T* v,
                             T* out, T* lse) {
  const int64_t q_stride = seq_len * layout.n_query_heads * layout.head_dim;
  const int64_t kv_stride = seq_len * layout.n_kv_heads * layout.head_dim;
  const int64_t out_stride = seq_len * layout.n_attention_heads() * layout.head_dim;
  const int64_t lse_stride = seq_len * layout.n_attention_heads();
  for (int64_t b = 0; b < n_sequences; ++b) {
    const AttentionArgs args = self_attention_args(layout, rope, seq_len, positions + b * seq_len,
                                                   segments == nullptr ? nullptr : segments + b * seq_len);
    if constexpr (std::is_same_v<T, float>) {
      attention_forward(args, q + b * q_stride, k + b * kv_stride, v + b * kv_stride, out + b * out_stride,
                        lse + b * lse_stride);
    } else {
      attention_forward_reference(args, q + b * q_stride, k + b * kv_stride, v + b * kv_stride,
                                  out + b * out_stride, lse + b * lse_stride);
    }
  }
}

template <typename T>
void attention_layer_backward(const HeadLayout& layout, const RopeTable& rope, int64_t n_sequences,
                              int64_t seq_len, const int32_t* positions, const int32_t* segments, const T* q,
                              const T* k, const T* v, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                              T* dv) {
  const int64_t q_stride = seq_len * layout.n_query_heads * layout.head_dim;
  const int64_t kv_stride = seq_len * layout.n_kv_heads * layout.head_dim;
  const int64_t out_stride = seq_len * layout.n_attention_heads() * layout.head_dim;
  const int64_t lse_stride = seq_len * layout.n_attention_heads();
  for (int64_t b = 0; b < n_sequences; ++b) {
    const AttentionArgs args = self_attention_args(layout, rope, seq_len, positions + b * seq_len,
                                                   segments == nullptr ? nullptr : segments + b * seq_len);
    if constexpr (std::is_same_v<T, float>) {
      attention_backward(args, q + b * q_stride, k + b * kv_stride, v + b * kv_stride, out + b * out_stride,
                         lse + b * lse_stride, dout + b * out_stride, dq + b * q_stride, dk + b * kv_stride,
                         dv + b * kv_stride);
    } else {
      attention_backward_reference(args, q + b * q_stride, k + b * kv_stride, v + b * kv_stride,
                                   dout + b * out_stride, dq + b * q_stride, dk + b * kv_stride, dv + b * kv_stride);
    }
  }
}

template <typename T>
CrossEntropySums lm_head_cross_entropy(const T* x, const T* weight, const int32_t* targets, int64_t n, int64_t c,
                                       int64_t vocab, double grad_scale, T* dx, T* dweight, T* logits_buffer,
                                       int64_t chunk_rows, MatmulPrecision precision) {
  CrossEntropySums sums;
  const bool backward = grad_scale != 0.0;
  for (int64_t begin = 0; begin < n; begin += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, n - begin);
    T* logits = logits_buffer;

    // 1. logits[rows, V] = x[rows, C] * weight^T
    matmul(false, true, rows, vocab, c, T(1), x + begin * c, c, weight, c, T(0), logits, vocab, precision);

    // 2. Per row: loss = logsumexp(logits) - logits[target]. In place, the
    //    logits become dloss/dlogits = grad_scale * (softmax - onehot(target)).
    double chunk_loss = 0.0;
    int64_t chunk_scored = 0;
#pragma omp parallel for schedule(static) reduction(+ : chunk_loss, chunk_scored) if (rows * vocab > kParallelThreshold)
    for (int64_t r = 0; r < rows; ++r) {
      T* row = logits + r * vocab;
      const int32_t target = targets[begin + r];
      if (target < 0) {
        if (backward) std::fill_n(row, vocab, T(0));
        continue;
      }
      T max_logit = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < vocab; ++j) max_logit = std::max(max_logit, row[j]);
      double denominator = 0.0;
      for (int64_t j = 0; j < vocab; ++j) denominator += std::exp(static_cast<double>(row[j] - max_logit));
      const double log_denominator = std::log(denominator) + static_cast<double>(max_logit);
      chunk_loss += log_denominator - static_cast<double>(row[target]);
      chunk_scored += 1;
      if (backward) {
        for (int64_t j = 0; j < vocab; ++j) {
          row[j] = static_cast<T>(grad_scale * std::exp(static_cast<double>(row[j]) - log_denominator));
        }
        row[target] -= static_cast<T>(grad_scale);
      }
    }
    // The reduction above has a thread-count-dependent order only for the
    // reported loss, never for gradients.
    sums.loss_sum += chunk_loss;
    sums.n_scored += chunk_scored;

    // 3. dweight += dlogits^T * x, dx = dlogits * weight.
    if (backward) {
      matmul(true, false, vocab, c, rows, T(1), logits, vocab, x + begin * c, c, T(1), dweight, c, precision);
      matmul(false, false, rows, c, vocab, T(1), logits, vocab, weight, c, T(0), dx + begin * c, c, precision);
    }
  }
  return sums;
}

#define ROPEPP_INSTANTIATE_LAYERS(T)                                                                                 \
  template void embedding_forward<T>(const int32_t*, int64_t, const T*, int64_t, T*);                                \
  template void embedding_backward<T>(const int32_t*, int64_t, const T*, int64_t, T*);                               \
  template void rmsnorm_forward<T>(const T*, const T*, int64_t, int64_t, double, T*, T*);                            \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*);               \
  template void linear_forward<T>(const T*, const T*, int64_t, int64_t, int64_t, T*, MatmulPrecision);               \
  template void linear_backward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*, bool, T*,            \
                                   MatmulPrecision);                                                                 \
  template void swiglu_forward<T>(const T*, const T*, int64_t, T*);                                                  \
  template void swiglu_backward<T>(const T*, const T*, const T*, int64_t, T*, T*);                                   \
  template void attention_layer_forward<T>(const HeadLayout&, const RopeTable&, int64_t, int64_t, const int32_t*,    \
                                           const int32_t*, const T*, const T*, const T*, T*, T*);                    \
  template void attention_layer_backward<T>(const HeadLayout&, const RopeTable&, int64_t, int64_t, const int32_t*,   \
                                            const int32_t*, const T*, const T*, const T*, const T*, const T*,        \
                                            const T*, T*, T*, T*);                                                   \
  template CrossEntropySums lm_head_cross_entropy<T>(const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, \
                                                     double, T*, T*, T*, int64_t, MatmulPrecision);

ROPEPP_INSTANTIATE_LAYERS(float)
ROPEPP_INSTANTIATE_LAYERS(double)

}  // namespace ropepp::train
