// Forward and backward passes of every layer of a Llama-style model, as
// <layer>_forward / <layer>_backward pairs. Each backward names what its
// forward saved. Backward functions ACCUMULATE into parameter gradients
// (dweight += ...) and into input gradients only where stated.
//
// Shape letters: N tokens (all sequences of a batch, row-major), C hidden size,
// I intermediate size, V vocabulary, O/IN output/input features of a linear layer.
//
// Every function is a template over float (training) and double (gradient
// checks against finite differences); both are instantiated in layers.cpp.
#pragma once

#include <cstdint>

#include "kernels/attention.h"
#include "train/gemm.h"

namespace ropepp::train {

// out[N,C] = weight[token[n]]. Token ids must lie in [0, V): callers validate them.
template <typename T>
void embedding_forward(const int32_t* tokens, int64_t n, const T* weight, int64_t c, T* out);

// dweight[token[n]] += dout[n].
template <typename T>
void embedding_backward(const int32_t* tokens, int64_t n, const T* dout, int64_t c, T* dweight);

// out = x * rstd * weight with rstd = 1 / sqrt(mean(x^2) + eps) per row; saves rstd[N].
template <typename T>
void rmsnorm_forward(const T* x, const T* weight, int64_t n, int64_t c, double eps, T* out, T* rstd);

// Writes dx (overwrites) and accumulates dweight.
template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* rstd, const T* dout, int64_t n, int64_t c, T* dx,
                      T* dweight);

// out[N,O] = x[N,IN] * weight[O,IN]^T (Hugging Face layout, no bias).
template <typename T>
void linear_forward(const T* x, const T* weight, int64_t n, int64_t in, int64_t out_features, T* out,
                    MatmulPrecision precision);

// dx[N,IN] (+)= dout * weight (accumulate_dx chooses); dweight += dout^T * x.
template <typename T>
void linear_backward(const T* x, const T* weight, const T* dout, int64_t n, int64_t in, int64_t out_features,
                     T* dx, bool accumulate_dx, T* dweight, MatmulPrecision precision);

// SwiGLU: h = silu(gate) * up, silu(g) = g / (1 + exp(-g)). All [N,I].
template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* h);

// Writes dgate and dup from dh.
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dh, int64_t count, T* dgate, T* dup);

// Batched self-attention: n_sequences sequences of seq_len tokens each, q/k/v
// before rotation laid out as in kernels/attention.h per sequence, positions and
// segment ids [n_sequences * seq_len]. The float version runs the fused kernels,
// the double version the double-precision reference (lse is then unused).
template <typename T>
void attention_layer_forward(const HeadLayout& layout, const RopeTable& rope, int64_t n_sequences, int64_t seq_len,
                             const int32_t* positions, const int32_t* segments, const T* q, const T* k, const T* v,
                             T* out, T* lse);

// Writes dq, dk and dv (before rotation).
template <typename T>
void attention_layer_backward(const HeadLayout& layout, const RopeTable& rope, int64_t n_sequences,
                              int64_t seq_len, const int32_t* positions, const int32_t* segments, const T* q,
                              const T* k, const T* v, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                              T* dv);

// Result of the fused LM head and cross-entropy over one batch.
struct CrossEntropySums {
  double loss_sum = 0.0;  // sum over scored positions of -log p(target)
  int64_t n_scored = 0;   // positions whose target is >= 0
};

// LM head fused with next-token cross-entropy, in row chunks so that only a
// [chunk, V] block of logits exists at a time. Targets < 0 are not scored.
// With grad_scale != 0 it also computes the gradient of grad_scale * loss_sum:
// dx[N,C] is overwritten and dweight[V,C] accumulated. logits_buffer must hold
// chunk_rows * V values.
template <typename T>
CrossEntropySums lm_head_cross_entropy(const T* x, const T* weight, const int32_t* targets, int64_t n, int64_t c,
                                       int64_t vocab, double grad_scale, T* dx, T* dweight, T* logits_buffer,
                                       int64_t chunk_rows, MatmulPrecision precision);

}  // namespace ropepp::train
