// Rotary tables: inv_freq of every scaling against its closed form, angles at
// large positions, and the RoPE++ identities of the rotate_half layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/rope.h"

namespace ropepp {
namespace {

constexpr double kPi = 3.14159265358979323846;

using Vector = std::vector<double>;

RopeTable make_table(int head_dim, double theta, RopeScalingType type = RopeScalingType::kNone, double factor = 1.0) {
  RopeParams params;
  params.head_dim = head_dim;
  params.theta = theta;
  params.scaling.type = type;
  params.scaling.factor = factor;
  return RopeTable(params);
}

Vector random_vector(Rng& rng, int n) {
  Vector x(static_cast<size_t>(n));
  for (double& value : x) value = rng.gaussian();
  return x;
}

Vector rotate_half(const Vector& x) {
  const size_t half = x.size() / 2;
  Vector result(x.size());
  for (size_t n = 0; n < half; ++n) {
    result[n] = -x[n + half];
    result[n + half] = x[n];
  }
  return result;
}

// x * cos + rotate_half(x) * sin with full-length cos and sin, written as the
// SPEC writes it: cos = [cos(angle), cos(angle)], the same for sin.
Vector rotate(const RopeTable& table, int64_t position, const Vector& x) {
  const int half = table.half_dim();
  Vector cos_half(static_cast<size_t>(half)), sin_half(static_cast<size_t>(half));
  table.cos_sin(position, cos_half.data(), sin_half.data());
  const Vector turned = rotate_half(x);
  Vector result(x.size());
  for (size_t e = 0; e < x.size(); ++e) {
    const size_t n = e % static_cast<size_t>(half);
    result[e] = x[e] * cos_half[n] + turned[e] * sin_half[n];
  }
  return result;
}

// The imaginary query straight from its definition: q * sin - rotate_half(q) * cos.
Vector imaginary_query(const RopeTable& table, int64_t position, const Vector& q) {
  const int half = table.half_dim();
  Vector cos_half(static_cast<size_t>(half)), sin_half(static_cast<size_t>(half));
  table.cos_sin(position, cos_half.data(), sin_half.data());
  const Vector turned = rotate_half(q);
  Vector result(q.size());
  for (size_t e = 0; e < q.size(); ++e) {
    const size_t n = e % static_cast<size_t>(half);
    result[e] = q[e] * sin_half[n] - turned[e] * cos_half[n];
  }
  return result;
}

double dot(const Vector& a, const Vector& b) {
  double sum = 0.0;
  for (size_t e = 0; e < a.size(); ++e) sum += a[e] * b[e];
  return sum;
}

// ---- inv_freq against closed forms ------------------------------------------

TEST(RopeTable, DefaultInvFreqClosedForm) {
  for (int head_dim : {64, 128}) {
    for (double theta : {10000.0, 500000.0}) {
      const RopeTable table = make_table(head_dim, theta);
      ASSERT_EQ(table.inv_freq().size(), static_cast<size_t>(head_dim / 2));
      for (int n = 0; n < head_dim / 2; ++n) {
        const double expected = 1.0 / std::pow(theta, 2.0 * n / head_dim);
        EXPECT_NEAR(table.inv_freq()[n], expected, 1e-15 * expected) << "n=" << n;
      }
      EXPECT_EQ(table.magnitude(), 1.0);
    }
  }
}

TEST(RopeTable, LinearInvFreqDividedByFactor) {
  const RopeTable plain = make_table(128, 10000.0);
  const RopeTable linear = make_table(128, 10000.0, RopeScalingType::kLinear, 8.0);
  for (size_t n = 0; n < plain.inv_freq().size(); ++n) {
    EXPECT_NEAR(linear.inv_freq()[n], plain.inv_freq()[n] / 8.0, 1e-15 * plain.inv_freq()[n]);
  }
  EXPECT_EQ(linear.magnitude(), 1.0);
}

TEST(RopeTable, YarnPaperClosedForm) {
  // The RoPE++ authors' YaRN: r = L / (2 pi) * inv_freq, gamma = clamp((r - 1) / 31, 0, 1),
  // inv_freq' = (1 - gamma) * inv_freq / s + gamma * inv_freq, magnitude 0.1 ln s + 1.
  const double factor = 32.0;
  const double original_length = 4096.0;
  const RopeTable plain = make_table(128, 10000.0);
  const RopeTable yarn = make_table(128, 10000.0, RopeScalingType::kYarnPaper, factor);
  int interpolated = 0, kept = 0, blended = 0;
  for (size_t n = 0; n < plain.inv_freq().size(); ++n) {
    const double frequency = plain.inv_freq()[n];
    const double rotations = original_length / (2.0 * kPi) * frequency;
    const double gamma = std::clamp((rotations - 1.0) / 31.0, 0.0, 1.0);
    const double expected = (1.0 - gamma) * frequency / factor + gamma * frequency;
    EXPECT_NEAR(yarn.inv_freq()[n], expected, 1e-14 * expected) << "n=" << n;
    interpolated += gamma == 0.0;
    kept += gamma == 1.0;
    blended += gamma > 0.0 && gamma < 1.0;
  }
  // The head size covers all three regions of the ramp, so each branch is checked.
  EXPECT_GT(interpolated, 0);
  EXPECT_GT(kept, 0);
  EXPECT_GT(blended, 0);
  EXPECT_NEAR(yarn.magnitude(), 0.1 * std::log(factor) + 1.0, 1e-15);
}

TEST(RopeTable, YarnHuggingFaceClosedForm) {
  // Hugging Face transformers' _compute_yarn_parameters (modeling_rope_utils.py):
  // the ramp runs over dimension indices between floor(c(beta_fast)) and
  // ceil(c(beta_slow)), clipped to [0, d - 1], with
  // c(r) = d ln(L / (2 pi r)) / (2 ln theta). Then
  // inv_freq' = inv_freq / s * ramp + inv_freq * (1 - ramp).
  const int head_dim = 128;
  const double theta = 10000.0;
  const double factor = 16.0;
  const double original_length = 4096.0;
  const auto correction_dim = [&](double rotations) {
    return head_dim * std::log(original_length / (rotations * 2.0 * kPi)) / (2.0 * std::log(theta));
  };
  const double low = std::max(std::floor(correction_dim(32.0)), 0.0);
  const double high = std::min(std::ceil(correction_dim(1.0)), head_dim - 1.0);
  ASSERT_LT(low, high);

  const RopeTable plain = make_table(head_dim, theta);
  const RopeTable yarn = make_table(head_dim, theta, RopeScalingType::kYarnHF, factor);
  for (int n = 0; n < head_dim / 2; ++n) {
    const double ramp = std::clamp((n - low) / (high - low), 0.0, 1.0);
    const double frequency = plain.inv_freq()[static_cast<size_t>(n)];
    const double expected = frequency / factor * ramp + frequency * (1.0 - ramp);
    EXPECT_NEAR(yarn.inv_freq()[static_cast<size_t>(n)], expected, 1e-14 * expected) << "n=" << n;
  }
  EXPECT_NEAR(yarn.magnitude(), 0.1 * std::log(factor) + 1.0, 1e-15);
}

TEST(RopeTable, InvalidParamsRaise) {
  EXPECT_THROW(make_table(63, 10000.0), Error);
  EXPECT_THROW(make_table(0, 10000.0), Error);
  EXPECT_THROW(make_table(64, 1.0), Error);
  EXPECT_THROW(make_table(64, std::nan("")), Error);
  EXPECT_THROW(make_table(64, 10000.0, RopeScalingType::kLinear, 0.5), Error);
  EXPECT_THROW(parse_rope_scaling_type("ntk"), Error);
  EXPECT_EQ(parse_rope_scaling_type("yarn-hf"), RopeScalingType::kYarnHF);
  EXPECT_EQ(rope_scaling_type_name(RopeScalingType::kYarnPaper), "yarn-paper");
}

// ---- Angles and rotation ----------------------------------------------------

TEST(RopeTable, AnglesAtLargePositionsComputedInDouble) {
  // In f32, position * inv_freq at position 1e6 has an absolute error near
  // 0.03 rad. Computed in double, with only cos and sin rounded to f32, every
  // value stays within one f32 rounding of the double result.
  const RopeTable table = make_table(128, 10000.0);
  for (int64_t position : {int64_t{1000000}, int64_t{123456789}, int64_t{2147483647}}) {
    std::vector<float> cos_values(64), sin_values(64);
    table.cos_sin(position, cos_values.data(), sin_values.data());
    for (int n = 0; n < 64; ++n) {
      const double angle = static_cast<double>(position) * table.inv_freq()[static_cast<size_t>(n)];
      EXPECT_NEAR(cos_values[static_cast<size_t>(n)], std::cos(angle), 6e-8) << "position " << position;
      EXPECT_NEAR(sin_values[static_cast<size_t>(n)], std::sin(angle), 6e-8) << "position " << position;
    }
  }
}

TEST(RopeRotate, MatchesDefinitionAndInverse) {
  for (RopeScalingType type : {RopeScalingType::kNone, RopeScalingType::kYarnPaper}) {
    const RopeTable table = make_table(64, 10000.0, type, type == RopeScalingType::kNone ? 1.0 : 16.0);
    Rng rng(3);
    const int n_tokens = 5, n_heads = 3, d = 64;
    const std::vector<int32_t> positions = {0, 1, 4097, 1000000, 2147483000};
    std::vector<float> x(static_cast<size_t>(n_tokens * n_heads * d));
    for (float& value : x) value = static_cast<float>(rng.gaussian());
    std::vector<float> rotated = x;
    rope_rotate(table, positions.data(), n_tokens, n_heads, rotated.data());

    for (int t = 0; t < n_tokens; ++t) {
      for (int h = 0; h < n_heads; ++h) {
        const size_t offset = static_cast<size_t>((t * n_heads + h) * d);
        const Vector row(x.begin() + offset, x.begin() + offset + d);
        const Vector expected = rotate(table, positions[static_cast<size_t>(t)], row);
        for (int e = 0; e < d; ++e) EXPECT_NEAR(rotated[offset + e], expected[static_cast<size_t>(e)], 2e-6);
      }
    }

    // rope_rotate_inverse is the transpose: <R x, y> = <x, R^T y>, also when
    // YaRN's magnitude makes R not orthogonal.
    std::vector<float> y(x.size());
    for (float& value : y) value = static_cast<float>(rng.gaussian());
    std::vector<float> transposed = y;
    rope_rotate_inverse(table, positions.data(), n_tokens, n_heads, transposed.data());
    double left = 0.0, right = 0.0;
    for (size_t e = 0; e < x.size(); ++e) {
      left += static_cast<double>(rotated[e]) * y[e];
      right += static_cast<double>(x[e]) * transposed[e];
    }
    EXPECT_NEAR(left, right, 1e-4 * std::abs(left) + 1e-4);
  }
}

// ---- The RoPE++ identities --------------------------------------------------

TEST(RopePlusPlus, ImaginaryQueryIsMinusRotateHalf) {
  const RopeTable table = make_table(128, 10000.0);
  Rng rng(7);
  for (int64_t position : {int64_t{0}, int64_t{17}, int64_t{3000}, int64_t{1000000}}) {
    const Vector q = random_vector(rng, 128);
    const Vector q_re = rotate(table, position, q);
    const Vector q_im = imaginary_query(table, position, q);
    const Vector expected = rotate_half(q_re);
    for (size_t e = 0; e < q.size(); ++e) EXPECT_NEAR(q_im[e], -expected[e], 1e-12) << "position " << position;
  }
}

TEST(RopePlusPlus, ImaginaryScoreMovesRotateHalfToKey) {
  const RopeTable table = make_table(64, 10000.0);
  Rng rng(8);
  for (int trial = 0; trial < 10; ++trial) {
    const Vector q = random_vector(rng, 64), k = random_vector(rng, 64);
    const int64_t t = static_cast<int64_t>(rng.below(5000)), s = static_cast<int64_t>(rng.below(5000));
    const Vector q_re = rotate(table, t, q);
    const Vector k_rot = rotate(table, s, k);
    const double imaginary_score = dot(imaginary_query(table, t, q), k_rot);
    EXPECT_NEAR(imaginary_score, dot(q_re, rotate_half(k_rot)), 1e-11);
  }
}

TEST(RopePlusPlus, ScoresEqualComplexSumParts) {
  // With pairs q~_n = q[n] + i q[n + d/2], z = sum_n q~_n conj(k~_n) e^{i theta_n (t - s)}:
  // the real score is Re z and the imaginary score is Im z, each times
  // magnitude^2 under YaRN.
  for (RopeScalingType type : {RopeScalingType::kNone, RopeScalingType::kYarnPaper}) {
    const RopeTable table = make_table(64, 10000.0, type, type == RopeScalingType::kNone ? 1.0 : 32.0);
    const int half = table.half_dim();
    Rng rng(9);
    for (int trial = 0; trial < 10; ++trial) {
      const Vector q = random_vector(rng, 64), k = random_vector(rng, 64);
      const int64_t t = static_cast<int64_t>(rng.below(100000)), s = static_cast<int64_t>(rng.below(100000));
      std::complex<double> z = 0.0;
      for (int n = 0; n < half; ++n) {
        const std::complex<double> q_pair(q[n], q[n + half]), k_pair(k[n], k[n + half]);
        const double angle = table.inv_freq()[static_cast<size_t>(n)] * static_cast<double>(t - s);
        z += q_pair * std::conj(k_pair) * std::polar(1.0, angle);
      }
      z *= table.magnitude() * table.magnitude();
      const Vector k_rot = rotate(table, s, k);
      const double tolerance = 1e-9 * std::abs(z) + 1e-9;
      EXPECT_NEAR(dot(rotate(table, t, q), k_rot), z.real(), tolerance);
      EXPECT_NEAR(dot(imaginary_query(table, t, q), k_rot), z.imag(), tolerance);
    }
  }
}

TEST(RopePlusPlus, ScoresDependOnlyOnDistance) {
  struct Setting {
    double theta;
    RopeScalingType type;
    double factor;
  };
  const Setting settings[] = {{10000.0, RopeScalingType::kNone, 1.0},
                              {500000.0, RopeScalingType::kNone, 1.0},  // NTK-style base change
                              {10000.0, RopeScalingType::kLinear, 8.0},
                              {10000.0, RopeScalingType::kYarnPaper, 32.0},
                              {10000.0, RopeScalingType::kYarnHF, 32.0}};
  for (const Setting& setting : settings) {
    SCOPED_TRACE(rope_scaling_type_name(setting.type));
    const RopeTable table = make_table(128, setting.theta, setting.type, setting.factor);
    Rng rng(10);
    const Vector q = random_vector(rng, 128), k = random_vector(rng, 128);
    for (int64_t distance : {int64_t{0}, int64_t{5}, int64_t{700}, int64_t{-30}}) {
      const int64_t t0 = 1000;
      const double real_score = dot(rotate(table, t0, q), rotate(table, t0 - distance, k));
      const double imaginary_score = dot(imaginary_query(table, t0, q), rotate(table, t0 - distance, k));
      for (int64_t shift : {int64_t{1}, int64_t{4096}, int64_t{900000}}) {
        const int64_t t = t0 + shift;
        const Vector k_rot = rotate(table, t - distance, k);
        // Angles up to 1e6 rad carry double rounding of ~1e-10 each.
        EXPECT_NEAR(dot(rotate(table, t, q), k_rot), real_score, 1e-8) << "distance " << distance;
        EXPECT_NEAR(dot(imaginary_query(table, t, q), k_rot), imaginary_score, 1e-8) << "distance " << distance;
      }
    }
  }
}

}  // namespace
}  // namespace ropepp
