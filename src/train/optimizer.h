// AdamW with decoupled weight decay, global-norm gradient clipping and the
// learning-rate schedules of the RoPE++ training recipe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.h"

namespace ropepp::train {

struct AdamWConfig {
  double beta1 = 0.95;
  double beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.1;  // not applied to RMSNorm weights
};

// AdamW as in PyTorch's torch.optim.AdamW: p -= lr * wd * p, then the
// bias-corrected Adam step p -= lr * m_hat / (sqrt(v_hat) + eps). Moments are
// f32 like the master weights.
class AdamW {
 public:
  AdamW(const AdamWConfig& config, const std::vector<ParameterInfo>& parameters);

  // One update of params (n_parameters values) from grads; increments step().
  void update(float* params, const float* grads, double lr);

  const AdamWConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  int64_t size() const { return static_cast<int64_t>(m_.size()); }

  // Optimizer state, for checkpoints: first and second moments and step count.
  std::vector<float>& first_moment() { return m_; }
  std::vector<float>& second_moment() { return v_; }
  const std::vector<float>& first_moment() const { return m_; }
  const std::vector<float>& second_moment() const { return v_; }
  void set_step(int64_t step) { step_ = step; }

 private:
  AdamWConfig config_;
  std::vector<ParameterInfo> parameters_;
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

// L2 norm of all gradients, summed in double in a fixed order (the same result
// for any thread count). NaN or inf when any gradient is not finite.
double gradient_norm(const float* grads, int64_t n);

// Multiplies grads by max_norm / norm when norm > max_norm (max_norm <= 0: never).
void clip_gradients(float* grads, int64_t n, double norm, double max_norm);

// Returns the name of the first tensor that contains a NaN or infinity, or "".
std::string first_nonfinite_tensor(const float* values, const std::vector<ParameterInfo>& parameters);

enum class ScheduleType {
  kConstant,  // linear warm-up, then constant
  kWSD,       // warm-up, stable, then cosine decay to min_lr over decay_steps
  kCosine,    // warm-up, then cosine decay to min_lr over the remaining steps
};

// Parses "constant", "wsd" or "cosine"; throws ropepp::Error otherwise.
ScheduleType parse_schedule_type(const std::string& name);
std::string schedule_type_name(ScheduleType type);

struct LrSchedule {
  ScheduleType type = ScheduleType::kConstant;
  double lr = 5e-4;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  int64_t decay_steps = 0;  // kWSD only; 0 leaves out the decay phase

  // Learning rate of optimizer step `step` (0-based). Warm-up ramps linearly
  // to lr, reaching it at step warmup_steps - 1.
  double at(int64_t step) const;

  // Throws ropepp::Error on inconsistent settings, naming the field.
  void validate() const;
};

}  // namespace ropepp::train
