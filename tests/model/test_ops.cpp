// The model's building blocks against plain double-precision loops, under
// every SIMD target this CPU runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/simd.h"
#include "model/ops.h"
#include "model_test_util.h"

namespace ropepp {
namespace {

std::vector<float> random_vector(int64_t n, uint64_t seed, double scale = 1.0) {
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[i] = static_cast<float>(scale * gaussian_at(seed, 0, i));
  return values;
}

std::vector<float> rounded_to_bf16(const std::vector<float>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = bf16_to_float(float_to_bf16(values[i]));
  return out;
}

// y = x W^T in double.
std::vector<float> reference_linear(const std::vector<float>& x, int64_t n, const std::vector<float>& w,
                                    int64_t out, int64_t in) {
  std::vector<float> y(static_cast<size_t>(n * out));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0.0;
      for (int64_t i = 0; i < in; ++i) sum += static_cast<double>(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = static_cast<float>(sum);
    }
  }
  return y;
}

std::vector<SimdTarget> supported_targets() {
  std::vector<SimdTarget> targets;
  for (SimdTarget target : {SimdTarget::kScalar, SimdTarget::kAvx2, SimdTarget::kAvx512}) {
    if (simd_target_supported(target)) targets.push_back(target);
  }
  return targets;
}

// Row counts cover the GEMV (<= 8, including groups of 4 with a remainder) and
// GEMM paths. Odd sizes exercise the vector tails, and output counts that the
// GEMV's blocks of 4 or 2 weight rows (for several rows of x) do not divide.
// The last three shapes are above the GEMV's threading threshold (2^18
// weights), so each thread's share ends inside a block. Tolerance: f32 sums of
// up to 515 products of unit-variance values, relative to the largest output:
// 1e-5.
TEST(OpsLinear, MatchesDoubleReference) {
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 64, 32},   {3, 37, 101},    {5, 301, 17},
                                                      {8, 16, 48},   {9, 77, 31},     {33, 129, 65},
                                                      {1, 1031, 263}, {2, 517, 515}, {3, 1029, 257}};
  for (SimdTarget target : supported_targets()) {
    ScopedSimdTarget scoped(target);
    for (const auto& [n, out, in] : shapes) {
      for (bool accumulate : {false, true}) {
        for (MatmulPrecision precision : {MatmulPrecision::kF32, MatmulPrecision::kBF16}) {
          SCOPED_TRACE(fmt::format("{} n={} out={} in={} accumulate={} {}", simd_target_name(target), n, out, in,
                                   accumulate, matmul_precision_name(precision)));
          const std::vector<float> x = random_vector(n * in, 1);
          const std::vector<float> w = random_vector(out * in, 2);
          const std::vector<float> start = random_vector(n * out, 3);
          std::vector<bf16_t> w_bf16(w.size());
          for (size_t i = 0; i < w.size(); ++i) w_bf16[i] = float_to_bf16(w[i]);
          LinearWeight weight{w.data(), w_bf16.data(), out, in};

          // The bf16 product is defined as the exact product of bf16-rounded operands.
          const bool bf16 = precision == MatmulPrecision::kBF16;
          std::vector<float> expected =
              bf16 ? reference_linear(rounded_to_bf16(x), n, rounded_to_bf16(w), out, in)
                   : reference_linear(x, n, w, out, in);
          if (accumulate) {
            for (size_t i = 0; i < expected.size(); ++i) expected[i] += start[i];
          }
          std::vector<float> y = start;
          linear_forward(x.data(), n, weight, y.data(), precision, accumulate);
          EXPECT_LT(test::relative_max_error(y, expected), 1e-5);
        }
      }
    }
  }
}

TEST(OpsLinear, Bf16WithoutCopyIsRejected) {
  const std::vector<float> x(4, 1.0f), w(8, 1.0f);
  std::vector<float> y(2);
  LinearWeight weight{w.data(), nullptr, 2, 4};
  EXPECT_THROW(linear_forward(x.data(), 1, weight, y.data(), MatmulPrecision::kBF16), Error);
}

TEST(OpsGemm, TransposesMatchDoubleReference) {
  const int64_t m = 13, n = 21, k = 35;
  for (SimdTarget target : supported_targets()) {
    ScopedSimdTarget scoped(target);
    for (bool trans_a : {false, true}) {
      for (bool trans_b : {false, true}) {
        for (MatmulPrecision precision : {MatmulPrecision::kF32, MatmulPrecision::kBF16}) {
          SCOPED_TRACE(fmt::format("{} trans_a={} trans_b={} {}", simd_target_name(target), trans_a, trans_b,
                                   matmul_precision_name(precision)));
          // Leading dimensions larger than the rows, to test strides.
          const int64_t lda = (trans_a ? m : k) + 3;
          const int64_t ldb = (trans_b ? k : n) + 2;
          const int64_t ldc = n + 1;
          std::vector<float> a = random_vector((trans_a ? k : m) * lda, 4);
          std::vector<float> b = random_vector((trans_b ? n : k) * ldb, 5);
          std::vector<float> c = random_vector(m * ldc, 6);
          const bool bf16 = precision == MatmulPrecision::kBF16;
          const std::vector<float> a_used = bf16 ? rounded_to_bf16(a) : a;
          const std::vector<float> b_used = bf16 ? rounded_to_bf16(b) : b;
          std::vector<float> expected(m * n), actual(m * n);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              double sum = 0.0;
              for (int64_t p = 0; p < k; ++p) {
                const double a_ip = trans_a ? a_used[p * lda + i] : a_used[i * lda + p];
                const double b_pj = trans_b ? b_used[j * ldb + p] : b_used[p * ldb + j];
                sum += a_ip * b_pj;
              }
              expected[i * n + j] = static_cast<float>(0.5 * sum + 2.0 * c[i * ldc + j]);
            }
          }
          gemm(trans_a, trans_b, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c.data(), ldc, precision);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) actual[i * n + j] = c[i * ldc + j];
          }
          EXPECT_LT(test::relative_max_error(actual, expected), 1e-5);
        }
      }
    }
  }
}

TEST(OpsRmsNorm, MatchesDoubleReference) {
  const int64_t rows = 5, dim = 37;
  const std::vector<float> x = random_vector(rows * dim, 7, 3.0);
  const std::vector<float> weight = random_vector(dim, 8);
  std::vector<float> y(x.size()), inv_rms(rows), expected(x.size());
  rms_norm_forward(x.data(), weight.data(), rows, dim, 1e-5, y.data(), inv_rms.data());
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double scale = 1.0 / std::sqrt(sum / dim + 1e-5);
    EXPECT_NEAR(inv_rms[r], scale, 1e-6 * scale);
    for (int64_t i = 0; i < dim; ++i) expected[r * dim + i] = static_cast<float>(x[r * dim + i] * scale * weight[i]);
  }
  EXPECT_LT(test::relative_max_error(y, expected), 1e-6);
}

// Every SIMD build, lengths around the vector width and one above the threading
// threshold (2^15) that the 4096-element chunks do not divide. Tolerance 1e-6
// of the largest output: the vector exp has at most 2 ulp of error.
TEST(OpsSwiglu, MatchesFormula) {
  for (SimdTarget target : supported_targets()) {
    ScopedSimdTarget scoped(target);
    for (int64_t n : {0, 1, 15, 16, 17, 101, 70001}) {
      SCOPED_TRACE(fmt::format("{} n={}", simd_target_name(target), n));
      const std::vector<float> gate = random_vector(n, 9, 4.0);
      const std::vector<float> up = random_vector(n, 10);
      std::vector<float> out(static_cast<size_t>(n)), expected(static_cast<size_t>(n));
      swiglu_forward(gate.data(), up.data(), n, out.data());
      for (int64_t i = 0; i < n; ++i) {
        expected[i] = static_cast<float>(gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i]);
      }
      if (n > 0) {
        EXPECT_LT(test::relative_max_error(out, expected), 1e-6);
      }
    }
  }
}

// Saturated gates: silu(g) = g for large g, about 0 for very negative g, and a
// NaN gate gives NaN, in the vector lanes and the scalar tail alike.
TEST(OpsSwiglu, ExtremeGates) {
  for (SimdTarget target : supported_targets()) {
    ScopedSimdTarget scoped(target);
    std::vector<float> gate(19, 0.0f), up(19, 2.0f), out(19);
    gate[0] = gate[17] = 100.0f;
    gate[1] = gate[18] = -100.0f;
    gate[2] = std::numeric_limits<float>::quiet_NaN();
    swiglu_forward(gate.data(), up.data(), 19, out.data());
    EXPECT_FLOAT_EQ(out[0], 200.0f);
    EXPECT_FLOAT_EQ(out[17], 200.0f);
    EXPECT_LE(std::abs(out[1]), 1e-30f);
    EXPECT_LE(std::abs(out[18]), 1e-30f);
    EXPECT_TRUE(std::isnan(out[2]));
    EXPECT_EQ(out[3], 0.0f);
  }
}

TEST(OpsEmbedding, CopiesRowsAndRejectsBadTokens) {
  const std::vector<float> table = random_vector(5 * 3, 11);
  const std::vector<int32_t> tokens = {4, 0, 4};
  std::vector<float> out(9);
  embedding_forward(table.data(), 5, 3, tokens.data(), 3, out.data());
  for (int i = 0; i < 3; ++i) {
    for (int e = 0; e < 3; ++e) EXPECT_EQ(out[i * 3 + e], table[tokens[i] * 3 + e]);
  }
  const std::vector<int32_t> bad = {1, 5};
  EXPECT_THROW(embedding_forward(table.data(), 5, 3, bad.data(), 2, out.data()), Error);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(embedding_forward(table.data(), 5, 3, negative.data(), 1, out.data()), Error);
}

TEST(OpsLogsumexp, StableForLargeValues) {
  const std::vector<float> x = {1000.0f, 1000.0f, -1e30f};
  EXPECT_NEAR(logsumexp(x.data(), 3), 1000.0 + std::log(2.0), 1e-9);
  const std::vector<float> small = {0.0f, std::log(3.0f)};
  EXPECT_NEAR(logsumexp(small.data(), 2), std::log(4.0), 1e-6);
}

}  // namespace
}  // namespace ropepp
