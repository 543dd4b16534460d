// Forward building blocks of the Llama / RoPE++ decoder, shared by inference
// (Model) and training (which differentiates them). Row-major layouts, f32
// activations. Each op threads with OpenMP when called outside a parallel
// region; none allocates per call except the bf16 scratch noted below.
#pragma once

#include <cstdint>
#include <string>

#include "model/weights.h"

namespace ropepp {

// Precision of matrix products.
//   kF32:  f32 operands, f32 accumulation (OpenBLAS sgemm / an own GEMV).
//   kBF16: both operands rounded to bf16, f32 accumulation: oneDNN matmul with
//          native AVX512-BF16 where cpu_features().avx512_bf16, else the same
//          rounded operands multiplied in f32 (same result up to summation order).
enum class MatmulPrecision { kF32, kBF16 };

// Parses "f32" or "bf16"; throws ropepp::Error otherwise.
MatmulPrecision parse_matmul_precision(const std::string& name);
std::string matmul_precision_name(MatmulPrecision precision);

// out[i][:] = table[tokens[i]][:] for i < n_tokens; table is [vocab][dim].
// Throws ropepp::Error naming the index and value of a token outside [0, vocab).
void embedding_forward(const float* table, int64_t vocab, int64_t dim, const int32_t* tokens, int64_t n_tokens,
                       float* out);

// RMSNorm over rows of x [n_rows][dim]:
//   y = (x * inv_rms) * weight,  inv_rms = 1 / sqrt(mean(x^2) + eps)
// computed with a double-precision sum of squares. inv_rms, when not null,
// receives [n_rows] for the backward pass. y may alias x.
void rms_norm_forward(const float* x, const float* weight, int64_t n_rows, int64_t dim, double eps, float* y,
                      float* inv_rms = nullptr);

// y [n_rows][out] = x [n_rows][in] * W^T with W [out][in]; with accumulate, y +=.
// For few rows (decode) a GEMV that streams W once is used. kBF16 needs
// weight.bf16 (Weights::enable_bf16) and throws ropepp::Error without it.
void linear_forward(const float* x, int64_t n_rows, const LinearWeight& weight, float* y,
                    MatmulPrecision precision = MatmulPrecision::kF32, bool accumulate = false);

// General product C = alpha * op(A) * op(B) + beta * C, row-major, with
// op(A) [m][k] and op(B) [k][n]; trans_a / trans_b select the transpose of the
// stored matrix. kBF16 rounds A and B to bf16 (into a scratch buffer) first.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
          MatmulPrecision precision = MatmulPrecision::kF32);

// SwiGLU: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)), for i < n.
// out may alias gate or up.
void swiglu_forward(const float* gate, const float* up, int64_t n, float* out);

// Natural log of sum(exp(x[i])) for i < n, computed stably in double.
double logsumexp(const float* x, int64_t n);

}  // namespace ropepp
