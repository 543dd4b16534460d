// Matrix-product kernels behind linear_forward and gemm (internal to the
// model layer).
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace ropepp::kernels_detail {

// y[r][o] (+)= sum_i x[r][i] * W[o][i] for r < n_rows, o < out; W [out][in]
// streamed once for every group of up to 4 rows of x. Threads over output rows.
void gemv_f32(const float* x, int64_t n_rows, int64_t in, const float* weight, int64_t out, float* y,
              bool accumulate);

// The same with bf16 weights and x rounded to bf16 (the bf16 product of
// linear_forward), f32 accumulation. Uses AVX512-BF16 dot products where the
// CPU has them, else converts W to f32 in registers. Both GEMVs follow the
// active SIMD target of kernels/simd.h: AVX-512, AVX2 (bf16 widened to f32 in
// registers), or a scalar loop.
void gemv_bf16(const float* x, int64_t n_rows, int64_t in, const bf16_t* weight, int64_t out, float* y,
               bool accumulate);

// True when oneDNN can run bf16 matrix products natively on this CPU and the
// active SIMD target (kernels/simd.h, which tests narrow) is AVX-512.
bool onednn_bf16_available();

// C [m][n] = alpha * A B + beta * C with bf16 A [m][k] and B [k][n] given by
// element strides (row, column), f32 C with row stride ldc. oneDNN matmul.
void matmul_bf16_onednn(int64_t m, int64_t n, int64_t k, const bf16_t* a, int64_t a_row_stride,
                        int64_t a_col_stride, const bf16_t* b, int64_t b_row_stride, int64_t b_col_stride,
                        float alpha, float beta, float* c, int64_t ldc);

}  // namespace ropepp::kernels_detail
