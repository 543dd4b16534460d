#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/characteristic.h"

namespace ropepp::eval {
namespace {

// The closed forms written directly from theta_n = base^(-2n/d), without RopeTable.
double direct_c_re(int d, double base, double dt) {
  double sum = 0.0;
  for (int n = 0; n < d / 2; ++n) sum += std::cos(std::pow(base, -2.0 * n / d) * dt);
  return 2.0 / d * sum;
}
double direct_c_im(int d, double base, double dt) {
  double sum = 0.0;
  for (int n = 0; n < d / 2; ++n) sum += std::sin(std::pow(base, -2.0 * n / d) * dt);
  return 2.0 / d * sum;
}

TEST(CharacteristicCurves, ClosedFormMatchesDefinition) {
  for (int d : {2, 16, 64, 128}) {
    for (double base : {10000.0, 500000.0}) {
      CharacteristicOptions options;
      options.rope.head_dim = d;
      options.rope.theta = base;
      options.distances = {0, 1, 2, 7, 100, 1000, 4095, 30000};
      const CharacteristicCurves curves = characteristic_curves(options);
      for (size_t i = 0; i < options.distances.size(); ++i) {
        const double dt = static_cast<double>(options.distances[i]);
        EXPECT_NEAR(curves.closed_real[i], direct_c_re(d, base, dt), 1e-12) << "d=" << d << " dt=" << dt;
        EXPECT_NEAR(curves.closed_imaginary[i], direct_c_im(d, base, dt), 1e-12) << "d=" << d << " dt=" << dt;
      }
      EXPECT_DOUBLE_EQ(curves.closed_real[0], 1.0);
      EXPECT_DOUBLE_EQ(curves.closed_imaginary[0], 0.0);
      EXPECT_TRUE(curves.empirical_real.empty());
    }
  }
}

TEST(CharacteristicCurves, RealDecaysImaginaryStaysOnPlateau) {
  CharacteristicOptions options;
  options.rope.head_dim = 128;
  for (int64_t dt = 10; dt <= 4096; ++dt) options.distances.push_back(dt);
  const CharacteristicCurves curves = characteristic_curves(options);

  // Means over a short range (10 .. 100) and a long range (1000 .. 4096).
  double short_re = 0, short_im = 0, long_re = 0, long_im = 0;
  int short_count = 0, long_count = 0;
  for (size_t i = 0; i < options.distances.size(); ++i) {
    if (options.distances[i] <= 100) {
      short_re += curves.closed_real[i], short_im += curves.closed_imaginary[i], ++short_count;
    } else if (options.distances[i] >= 1000) {
      long_re += curves.closed_real[i], long_im += curves.closed_imaginary[i], ++long_count;
    }
  }
  short_re /= short_count, short_im /= short_count, long_re /= long_count, long_im /= long_count;
  // For d = 128 and base 10000 these ratios are about 0.17 and 0.85.
  EXPECT_LT(long_re / short_re, 0.25) << "the real curve decays with distance";
  EXPECT_GT(long_im / short_im, 0.7) << "the imaginary curve stays near its plateau";
  EXPECT_GT(long_im, 0.1);
}

TEST(CharacteristicCurves, EmpiricalMatchesClosedForm) {
  for (double correlation : {1.0, 0.5}) {
    CharacteristicOptions options;
    options.rope.head_dim = 32;
    options.distances = {0, 3, 40, 900};
    options.samples = 4000;
    options.correlation = correlation;
    options.seed = 11;
    const CharacteristicCurves curves = characteristic_curves(options);
    for (size_t i = 0; i < options.distances.size(); ++i) {
      SCOPED_TRACE(testing::Message() << "rho=" << correlation << " dt=" << options.distances[i]);
      // 5 standard errors: a false failure has probability < 1e-5 per value;
      // 1e-4 absolute allows for the f32 rotation.
      EXPECT_NEAR(curves.empirical_real[i], curves.closed_real[i], 5 * curves.empirical_real_stderr[i] + 1e-4);
      EXPECT_NEAR(curves.empirical_imaginary[i], curves.closed_imaginary[i],
                  5 * curves.empirical_imaginary_stderr[i] + 1e-4);
      EXPECT_GT(curves.empirical_real_stderr[i], 0.0);
    }
  }
}

TEST(CharacteristicCurves, EmpiricalErrorShrinksWithSamples) {
  CharacteristicOptions options;
  options.rope.head_dim = 16;
  options.distances = {5, 60};
  options.seed = 3;
  options.samples = 100;
  const CharacteristicCurves few = characteristic_curves(options);
  options.samples = 10000;
  const CharacteristicCurves many = characteristic_curves(options);
  for (size_t i = 0; i < options.distances.size(); ++i) {
    // Standard errors fall as 1/sqrt(samples): 100x samples, 10x smaller.
    EXPECT_NEAR(many.empirical_real_stderr[i] / few.empirical_real_stderr[i], 0.1, 0.03);
    EXPECT_LT(std::abs(many.empirical_real[i] - many.closed_real[i]), 5 * many.empirical_real_stderr[i] + 1e-4);
  }
}

TEST(CharacteristicCurves, YarnMagnitudeScalesBothCurves) {
  CharacteristicOptions options;
  options.rope.head_dim = 64;
  options.rope.scaling.type = RopeScalingType::kYarnPaper;
  options.rope.scaling.factor = 8.0;
  options.distances = {0};
  const double magnitude = 0.1 * std::log(8.0) + 1.0;
  EXPECT_NEAR(characteristic_curves(options).closed_real[0], magnitude * magnitude, 1e-12);
}

TEST(CharacteristicCurves, InvalidOptionsRejected) {
  CharacteristicOptions options;
  options.rope.head_dim = 16;
  EXPECT_THROW(characteristic_curves(options), Error) << "no distances";
  options.distances = {-1};
  EXPECT_THROW(characteristic_curves(options), Error);
  options.distances = {1};
  options.correlation = 0.0;
  EXPECT_THROW(characteristic_curves(options), Error);
  EXPECT_THROW(linear_distances(10, 1), Error);
  EXPECT_EQ(linear_distances(10, 3), (std::vector<int64_t>{0, 5, 10}));
}

}  // namespace
}  // namespace ropepp::eval
