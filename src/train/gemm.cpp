#include "train/gemm.h"

#include <cblas.h>

#include "core/cpu.h"

namespace ropepp::train {
namespace {

CBLAS_TRANSPOSE blas_transpose(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

}  // namespace

bool bf16_matmul_supported() { return cpu_features().avx512_bf16; }

void matmul(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, MatmulPrecision precision) {
  // The model's GEMM: sgemm, or oneDNN with operands rounded to bf16.
  ropepp::gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, precision);
}

void matmul(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc,
          MatmulPrecision precision) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, blas_transpose(transpose_a), blas_transpose(transpose_b), static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}

}  // namespace ropepp::train
