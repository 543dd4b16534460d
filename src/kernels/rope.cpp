#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace ropepp {
namespace {

constexpr double kPi = 3.14159265358979323846;

double default_attention_factor(double factor) { return factor <= 1.0 ? 1.0 : 0.1 * std::log(factor) + 1.0; }

// The authors' YaRN: with r = L / (2 pi) * inv_freq (rotations over the
// original context L), frequencies that turn fewer than once keep the linear
// interpolation, those turning 32 or more times stay unchanged, and a linear
// ramp in r blends the two in between.
void apply_yarn_paper(const RopeScaling& scaling, std::vector<double>& inv_freq) {
  for (double& frequency : inv_freq) {
    const double rotations = static_cast<double>(scaling.original_max_position) / (2.0 * kPi) * frequency;
    const double gamma = std::clamp((rotations - 1.0) / (32.0 - 1.0), 0.0, 1.0);
    frequency = (1.0 - gamma) * frequency / scaling.factor + gamma * frequency;
  }
}

// Hugging Face's YaRN ramps over dimension indices between the dimensions at
// which the original context holds beta_fast and beta_slow rotations.
void apply_yarn_hf(const RopeScaling& scaling, int head_dim, double theta, std::vector<double>& inv_freq) {
  const double d = head_dim;
  const auto correction_dim = [&](double rotations) {
    return d * std::log(static_cast<double>(scaling.original_max_position) / (rotations * 2.0 * kPi)) /
           (2.0 * std::log(theta));
  };
  double low = std::max(std::floor(correction_dim(scaling.beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(scaling.beta_slow)), d - 1.0);
  if (low == high) high += 0.001;  // avoids a division by zero, as transformers does

  for (size_t n = 0; n < inv_freq.size(); ++n) {
    const double ramp = std::clamp((static_cast<double>(n) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    inv_freq[n] = inv_freq[n] / scaling.factor * ramp + inv_freq[n] * extrapolation_weight;
  }
}

}  // namespace

RopeScalingType parse_rope_scaling_type(const std::string& name) {
  if (name == "none") return RopeScalingType::kNone;
  if (name == "linear") return RopeScalingType::kLinear;
  if (name == "yarn-paper") return RopeScalingType::kYarnPaper;
  if (name == "yarn-hf") return RopeScalingType::kYarnHF;
  fail("invalid rope scaling '{}': expected none, linear, yarn-paper or yarn-hf", name);
}

std::string rope_scaling_type_name(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone: return "none";
    case RopeScalingType::kLinear: return "linear";
    case RopeScalingType::kYarnPaper: return "yarn-paper";
    case RopeScalingType::kYarnHF: return "yarn-hf";
  }
  return "none";
}

RopeTable::RopeTable(const RopeParams& params) : params_(params) {
  ROPEPP_CHECK(params.head_dim > 0 && params.head_dim % 2 == 0,
               "invalid head_dim {}: rotary embeddings need a positive even head size", params.head_dim);
  ROPEPP_CHECK(std::isfinite(params.theta) && params.theta > 1.0, "invalid rope_theta {}: expected a number > 1",
               params.theta);
  const RopeScaling& scaling = params.scaling;
  if (scaling.type != RopeScalingType::kNone) {
    ROPEPP_CHECK(std::isfinite(scaling.factor) && scaling.factor >= 1.0,
                 "invalid rope scaling factor {}: expected a number >= 1", scaling.factor);
    ROPEPP_CHECK(scaling.original_max_position > 0, "invalid original_max_position_embeddings {}: expected > 0",
                 scaling.original_max_position);
  }

  const int half = params.head_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int n = 0; n < half; ++n) {
    inv_freq_[static_cast<size_t>(n)] = std::pow(params.theta, -2.0 * n / params.head_dim);
  }

  switch (scaling.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      for (double& frequency : inv_freq_) frequency /= scaling.factor;
      break;
    case RopeScalingType::kYarnPaper:
      apply_yarn_paper(scaling, inv_freq_);
      break;
    case RopeScalingType::kYarnHF:
      apply_yarn_hf(scaling, params.head_dim, params.theta, inv_freq_);
      break;
  }
  if (scaling.type == RopeScalingType::kYarnPaper || scaling.type == RopeScalingType::kYarnHF) {
    magnitude_ = scaling.attention_factor > 0 ? scaling.attention_factor : default_attention_factor(scaling.factor);
  }
}

void RopeTable::cos_sin(int64_t position, double* cos_out, double* sin_out) const {
  const double p = static_cast<double>(position);
  for (size_t n = 0; n < inv_freq_.size(); ++n) {
    const double angle = p * inv_freq_[n];
    cos_out[n] = magnitude_ * std::cos(angle);
    sin_out[n] = magnitude_ * std::sin(angle);
  }
}

void RopeTable::cos_sin(int64_t position, float* cos_out, float* sin_out) const {
  const double p = static_cast<double>(position);
  for (size_t n = 0; n < inv_freq_.size(); ++n) {
    const double angle = p * inv_freq_[n];
    cos_out[n] = static_cast<float>(magnitude_ * std::cos(angle));
    sin_out[n] = static_cast<float>(magnitude_ * std::sin(angle));
  }
}

namespace {

// sign = +1 rotates by +angle, -1 by -angle (the transpose).
void rotate_rows(const RopeTable& table, const int32_t* positions, int64_t n_tokens, int n_heads, float* x,
                 float sign) {
  const int half = table.half_dim();
  const int d = table.head_dim();
#pragma omp parallel if (n_tokens * n_heads * d > 32768)
  {
    std::vector<float> cos_values(static_cast<size_t>(half));
    std::vector<float> sin_values(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tokens; ++t) {
      table.cos_sin(positions[t], cos_values.data(), sin_values.data());
      for (int h = 0; h < n_heads; ++h) {
        float* row = x + (t * n_heads + h) * d;
        for (int n = 0; n < half; ++n) {
          const float a = row[n];
          const float b = row[n + half];
          const float c = cos_values[static_cast<size_t>(n)];
          const float s = sign * sin_values[static_cast<size_t>(n)];
          row[n] = a * c - b * s;
          row[n + half] = b * c + a * s;
        }
      }
    }
  }
}

}  // namespace

void rope_rotate(const RopeTable& table, const int32_t* positions, int64_t n_tokens, int n_heads, float* x) {
  rotate_rows(table, positions, n_tokens, n_heads, x, 1.0f);
}

void rope_rotate_inverse(const RopeTable& table, const int32_t* positions, int64_t n_tokens, int n_heads,
                         float* x) {
  rotate_rows(table, positions, n_tokens, n_heads, x, -1.0f);
}

}  // namespace ropepp
