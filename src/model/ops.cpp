#include "model/ops.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/activations.h"
#include "model/matmul_kernels.h"

namespace ropepp {
namespace {

// Up to this many rows of x a linear layer runs as GEMV, which reads W once
// per group of 4 rows. Beyond it, a blocked GEMM reuses W from cache better.
constexpr int64_t kMaxGemvRows = 8;

// Rounds a strided matrix [rows][cols] (row stride ld) to bf16, packed with row stride cols.
void round_to_bf16(const float* source, int64_t rows, int64_t cols, int64_t ld, std::vector<bf16_t>& out) {
  out.resize(static_cast<size_t>(rows * cols));
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16) && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = float_to_bf16(source[r * ld + c]);
  }
}

void widen_bf16(const bf16_t* source, int64_t n, std::vector<float>& out) {
  out.resize(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) if (n > (1 << 16) && !omp_in_parallel())
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(source[i]);
}

}  // namespace

MatmulPrecision parse_matmul_precision(const std::string& name) {
  if (name == "f32") return MatmulPrecision::kF32;
  if (name == "bf16") return MatmulPrecision::kBF16;
  fail("invalid precision '{}': expected f32 or bf16", name);
}

std::string matmul_precision_name(MatmulPrecision precision) {
  return precision == MatmulPrecision::kF32 ? "f32" : "bf16";
}

void embedding_forward(const float* table, int64_t vocab, int64_t dim, const int32_t* tokens, int64_t n_tokens,
                       float* out) {
  for (int64_t i = 0; i < n_tokens; ++i) {
    ROPEPP_CHECK(tokens[i] >= 0 && tokens[i] < vocab,
                 "token {} at index {} is outside the vocabulary 0..{} (the tokenizer does not match the model?)",
                 tokens[i], i, vocab - 1);
  }
#pragma omp parallel for schedule(static) if (n_tokens * dim > (1 << 16) && !omp_in_parallel())
  for (int64_t i = 0; i < n_tokens; ++i) {
    const float* row = table + static_cast<int64_t>(tokens[i]) * dim;
    std::copy(row, row + dim, out + i * dim);
  }
}

void rms_norm_forward(const float* x, const float* weight, int64_t n_rows, int64_t dim, double eps, float* y,
                      float* inv_rms) {
#pragma omp parallel for schedule(static) if (n_rows * dim > (1 << 15) && !omp_in_parallel())
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * dim;
    double sum_squares = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_squares += static_cast<double>(row[i]) * row[i];
    const float scale = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(dim) + eps));
    if (inv_rms != nullptr) inv_rms[r] = scale;
    float* out = y + r * dim;
    // Normalise first, then apply the gain, in that order (as the Hugging Face
    // Llama RMSNorm does), so rounding matches it in f32.
    for (int64_t i = 0; i < dim; ++i) out[i] = (row[i] * scale) * weight[i];
  }
}

void linear_forward(const float* x, int64_t n_rows, const LinearWeight& weight, float* y,
                    MatmulPrecision precision, bool accumulate) {
  const int64_t out = weight.out_features;
  const int64_t in = weight.in_features;
  if (n_rows == 0) return;

  if (precision == MatmulPrecision::kF32) {
    if (n_rows <= kMaxGemvRows) {
      kernels_detail::gemv_f32(x, n_rows, in, weight.f32, out, y, accumulate);
      return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_rows), static_cast<int>(out),
                static_cast<int>(in), 1.0f, x, static_cast<int>(in), weight.f32, static_cast<int>(in),
                accumulate ? 1.0f : 0.0f, y, static_cast<int>(out));
    return;
  }

  ROPEPP_CHECK(weight.bf16 != nullptr,
               "bf16 matrix product requested but the weights have no bf16 copy (call Weights::enable_bf16)");
  if (n_rows <= kMaxGemvRows) {
    kernels_detail::gemv_bf16(x, n_rows, in, weight.bf16, out, y, accumulate);
    return;
  }
  thread_local std::vector<bf16_t> x_bf16;
  round_to_bf16(x, n_rows, in, in, x_bf16);
  if (kernels_detail::onednn_bf16_available()) {
    // W [out][in] row-major is B = W^T [in][out] with strides (1, in).
    kernels_detail::matmul_bf16_onednn(n_rows, out, in, x_bf16.data(), in, 1, weight.bf16, 1, in, 1.0f,
                                       accumulate ? 1.0f : 0.0f, y, out);
    return;
  }
  // NOTE: without native bf16 the whole weight matrix is widened to f32 on
  // every call, which costs memory traffic but keeps the results of the bf16 path.
  thread_local std::vector<float> x_rounded, w_widened;
  widen_bf16(x_bf16.data(), n_rows * in, x_rounded);
  widen_bf16(weight.bf16, out * in, w_widened);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_rows), static_cast<int>(out),
              static_cast<int>(in), 1.0f, x_rounded.data(), static_cast<int>(in), w_widened.data(),
              static_cast<int>(in), accumulate ? 1.0f : 0.0f, y, static_cast<int>(out));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, MatmulPrecision precision) {
  if (m == 0 || n == 0) return;
  if (precision == MatmulPrecision::kF32) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
    return;
  }

  // Stored shapes: A is [m][k] or, transposed, [k][m]; B is [k][n] or [n][k].
  const int64_t a_rows = trans_a ? k : m;
  const int64_t a_cols = trans_a ? m : k;
  const int64_t b_rows = trans_b ? n : k;
  const int64_t b_cols = trans_b ? k : n;
  thread_local std::vector<bf16_t> a_bf16, b_bf16;
  round_to_bf16(a, a_rows, a_cols, lda, a_bf16);
  round_to_bf16(b, b_rows, b_cols, ldb, b_bf16);

  if (kernels_detail::onednn_bf16_available()) {
    kernels_detail::matmul_bf16_onednn(m, n, k, a_bf16.data(), trans_a ? 1 : a_cols, trans_a ? a_cols : 1,
                                       b_bf16.data(), trans_b ? 1 : b_cols, trans_b ? b_cols : 1, alpha, beta, c,
                                       ldc);
    return;
  }
  thread_local std::vector<float> a_rounded, b_rounded;
  widen_bf16(a_bf16.data(), a_rows * a_cols, a_rounded);
  widen_bf16(b_bf16.data(), b_rows * b_cols, b_rounded);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a_rounded.data(),
              static_cast<int>(a_cols), b_rounded.data(), static_cast<int>(b_cols), beta, c, static_cast<int>(ldc));
}

void swiglu_forward(const float* gate, const float* up, int64_t n, float* out) {
  // Chunks of whole cache lines per thread; the vector kernel does the rest.
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > (1 << 15) && !omp_in_parallel())
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk;
    swiglu_span(gate + begin, up + begin, std::min(kChunk, n - begin), out + begin);
  }
}

double logsumexp(const float* x, int64_t n) {
  if (n == 0) return -INFINITY;
  float max_value = x[0];
  for (int64_t i = 1; i < n; ++i) max_value = std::max(max_value, x[i]);
  if (std::isinf(max_value)) return max_value;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - max_value);
  return max_value + std::log(sum);
}

}  // namespace ropepp
