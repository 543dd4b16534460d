// Row-major matrix products for training: float goes to the model's gemm()
// (f32 BLAS, or bf16 operands with f32 accumulation through oneDNN), double
// to BLAS dgemm for gradient checks.
#pragma once

#include <cstdint>

#include "model/ops.h"

namespace ropepp::train {

// kF32: BLAS sgemm (dgemm for double); kBF16: both inputs rounded to bf16,
// products accumulated in f32 by oneDNN (needs AVX512_BF16; double ignores it).
using ropepp::MatmulPrecision;

// True when this CPU runs bf16 products natively. Elsewhere kBF16 still gives
// bf16-rounded results, but through f32 products, so it is slower than kF32.
bool bf16_matmul_supported();

// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, every matrix row-major;
// op(X) is X or its transpose. lda/ldb/ldc are the row strides of A, B and C as
// stored (before op). precision only affects float.
void matmul(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
          MatmulPrecision precision = MatmulPrecision::kF32);
void matmul(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc,
          MatmulPrecision precision = MatmulPrecision::kF32);

}  // namespace ropepp::train
