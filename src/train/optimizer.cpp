#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace ropepp::train {

AdamW::AdamW(const AdamWConfig& config, const std::vector<ParameterInfo>& parameters)
    : config_(config), parameters_(parameters) {
  ROPEPP_CHECK(config.beta1 >= 0 && config.beta1 < 1, "invalid AdamW beta1 {}: expected 0 <= beta1 < 1", config.beta1);
  ROPEPP_CHECK(config.beta2 >= 0 && config.beta2 < 1, "invalid AdamW beta2 {}: expected 0 <= beta2 < 1", config.beta2);
  ROPEPP_CHECK(config.eps > 0, "invalid AdamW eps {}: expected > 0", config.eps);
  ROPEPP_CHECK(config.weight_decay >= 0, "invalid weight decay {}: expected >= 0", config.weight_decay);
  const int64_t n = parameters.empty() ? 0 : parameters.back().offset + parameters.back().numel;
  m_.assign(static_cast<size_t>(n), 0.0f);
  v_.assign(static_cast<size_t>(n), 0.0f);
}

void AdamW::update(float* params, const float* grads, double lr) {
  ++step_;
  const double correction1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double correction2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  const float beta1 = static_cast<float>(config_.beta1), beta2 = static_cast<float>(config_.beta2);
  // step = lr * m / correction1 / (sqrt(v / correction2) + eps)
  const float step_size = static_cast<float>(lr / correction1);
  const float inverse_sqrt_correction2 = static_cast<float>(1.0 / std::sqrt(correction2));
  const float eps = static_cast<float>(config_.eps);

  for (const ParameterInfo& info : parameters_) {
    const float decay = info.is_norm ? 1.0f : static_cast<float>(1.0 - lr * config_.weight_decay);
    float* p = params + info.offset;
    const float* g = grads + info.offset;
    float* m = m_.data() + info.offset;
    float* v = v_.data() + info.offset;
#pragma omp parallel for schedule(static) if (info.numel > (1 << 14))
    for (int64_t i = 0; i < info.numel; ++i) {
      m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
      v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
      const float denominator = std::sqrt(v[i]) * inverse_sqrt_correction2 + eps;
      p[i] = p[i] * decay - step_size * m[i] / denominator;
    }
  }
}

double gradient_norm(const float* grads, int64_t n) {
  // Fixed blocks summed in order: the same bits for any thread count.
  constexpr int64_t kBlock = 1 << 16;
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(n_blocks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n_blocks; ++b) {
    double sum = 0.0;
    for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) sum += static_cast<double>(grads[i]) * grads[i];
    partial[b] = sum;
  }
  double total = 0.0;
  for (double sum : partial) total += sum;
  return std::sqrt(total);
}

void clip_gradients(float* grads, int64_t n, double norm, double max_norm) {
  if (max_norm <= 0.0 || !(norm > max_norm)) return;
  const float factor = static_cast<float>(max_norm / norm);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) grads[i] *= factor;
}

std::string first_nonfinite_tensor(const float* values, const std::vector<ParameterInfo>& parameters) {
  for (const ParameterInfo& info : parameters) {
    for (int64_t i = 0; i < info.numel; ++i) {
      if (!std::isfinite(values[info.offset + i])) return info.name;
    }
  }
  return "";
}

ScheduleType parse_schedule_type(const std::string& name) {
  if (name == "constant") return ScheduleType::kConstant;
  if (name == "wsd") return ScheduleType::kWSD;
  if (name == "cosine") return ScheduleType::kCosine;
  fail("invalid learning-rate schedule '{}': expected constant, wsd or cosine", name);
}

std::string schedule_type_name(ScheduleType type) {
  switch (type) {
    case ScheduleType::kConstant: return "constant";
    case ScheduleType::kWSD: return "wsd";
    case ScheduleType::kCosine: return "cosine";
  }
  return "constant";
}

void LrSchedule::validate() const {
  ROPEPP_CHECK(std::isfinite(lr) && lr > 0, "invalid learning rate {}: expected > 0", lr);
  ROPEPP_CHECK(min_lr >= 0 && min_lr <= lr, "invalid min_lr {}: expected 0 <= min_lr <= lr ({})", min_lr, lr);
  ROPEPP_CHECK(total_steps > 0, "invalid number of steps {}: expected > 0", total_steps);
  ROPEPP_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps,
               "invalid warmup_steps {}: expected between 0 and the number of steps ({})", warmup_steps, total_steps);
  if (type == ScheduleType::kWSD) {
    ROPEPP_CHECK(decay_steps >= 0 && warmup_steps + decay_steps <= total_steps,
                 "invalid decay_steps {} for the wsd schedule: expected >= 0 and warmup_steps ({}) + decay_steps <= "
                 "steps ({})",
                 decay_steps, warmup_steps, total_steps);
  }
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  auto cosine = [&](int64_t done, int64_t length) {
    const double progress = std::clamp(static_cast<double>(done) / static_cast<double>(std::max<int64_t>(length, 1)), 0.0, 1.0);
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  };
  switch (type) {
    case ScheduleType::kConstant:
      return lr;
    case ScheduleType::kWSD: {
      const int64_t decay_start = total_steps - decay_steps;
      if (step < decay_start || decay_steps == 0) return lr;
      // The last step (decay_steps - 1 after decay_start) reaches min_lr.
      return cosine(step - decay_start + 1, decay_steps);
    }
    case ScheduleType::kCosine:
      return cosine(step - warmup_steps + 1, total_steps - warmup_steps);
  }
  return lr;
}

}  // namespace ropepp::train
