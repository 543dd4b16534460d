// AdamW, gradient clipping and learning-rate schedules against their formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/optimizer.h"

namespace ropepp::train {
namespace {

TEST(AdamW, MatchesReferenceFormula) {
  std::vector<ParameterInfo> parameters(2);
  parameters[0] = {"model.layers.0.mlp.up_proj.weight", {2, 2}, 0, 4, false};
  parameters[1] = {"model.norm.weight", {2}, 4, 2, true};
  AdamWConfig config;
  AdamW optimizer(config, parameters);
  std::vector<float> params = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, 1.5f};
  std::vector<double> expected(params.begin(), params.end()), m(6, 0.0), v(6, 0.0);
  const double lr = 1e-2;
  for (int step = 1; step <= 3; ++step) {
    std::vector<float> grads(6);
    for (int i = 0; i < 6; ++i) grads[i] = static_cast<float>(0.1 * (i + 1) * (step % 2 == 0 ? -1 : 1));
    optimizer.update(params.data(), grads.data(), lr);
    for (int i = 0; i < 6; ++i) {
      // torch.optim.AdamW: decoupled decay, then the bias-corrected Adam step.
      if (i < 4) expected[i] *= 1.0 - lr * config.weight_decay;
      m[i] = config.beta1 * m[i] + (1 - config.beta1) * grads[i];
      v[i] = config.beta2 * v[i] + (1 - config.beta2) * grads[i] * grads[i];
      const double m_hat = m[i] / (1 - std::pow(config.beta1, step));
      const double v_hat = v[i] / (1 - std::pow(config.beta2, step));
      expected[i] -= lr * m_hat / (std::sqrt(v_hat) + config.eps);
    }
  }
  EXPECT_EQ(optimizer.step(), 3);
  // f32 state and arithmetic: a few units in the last place of values near 1.
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(params[i], expected[i], 2e-6) << "element " << i;
}

TEST(GradientClipping, ScalesToMaxNorm) {
  std::vector<float> grads = {3.0f, 4.0f};
  const double norm = gradient_norm(grads.data(), 2);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  clip_gradients(grads.data(), 2, norm, 1.0);
  EXPECT_FLOAT_EQ(grads[0], 0.6f);
  EXPECT_FLOAT_EQ(grads[1], 0.8f);
  clip_gradients(grads.data(), 2, gradient_norm(grads.data(), 2), 2.0);  // under the limit: unchanged
  EXPECT_FLOAT_EQ(grads[1], 0.8f);
}

TEST(GradientClipping, NamesNonFiniteTensor) {
  std::vector<ParameterInfo> parameters(2);
  parameters[0] = {"a", {2}, 0, 2, false};
  parameters[1] = {"b", {2}, 2, 2, false};
  std::vector<float> grads = {1, 2, 3, std::nanf("")};
  EXPECT_TRUE(std::isnan(gradient_norm(grads.data(), 4)));
  EXPECT_EQ(first_nonfinite_tensor(grads.data(), parameters), "b");
  grads[3] = 0;
  EXPECT_EQ(first_nonfinite_tensor(grads.data(), parameters), "");
}

TEST(Schedule, WarmupStableDecay) {
  LrSchedule schedule;
  schedule.type = ScheduleType::kWSD;
  schedule.lr = 1.0;
  schedule.warmup_steps = 4;
  schedule.total_steps = 20;
  schedule.decay_steps = 5;
  schedule.validate();
  EXPECT_DOUBLE_EQ(schedule.at(0), 0.25);
  EXPECT_DOUBLE_EQ(schedule.at(3), 1.0);
  EXPECT_DOUBLE_EQ(schedule.at(14), 1.0);                                    // last stable step
  EXPECT_NEAR(schedule.at(15), 0.5 * (1 + std::cos(M_PI * 0.2)), 1e-12);     // first decay step
  EXPECT_NEAR(schedule.at(19), 0.0, 1e-12);                                  // decays to zero
}

TEST(Schedule, CosineAndConstant) {
  LrSchedule schedule;
  schedule.type = ScheduleType::kCosine;
  schedule.lr = 2.0;
  schedule.min_lr = 0.2;
  schedule.warmup_steps = 2;
  schedule.total_steps = 12;
  EXPECT_DOUBLE_EQ(schedule.at(1), 2.0);
  EXPECT_NEAR(schedule.at(6), 0.2 + 1.8 * 0.5 * (1 + std::cos(M_PI * 0.5)), 1e-12);  // halfway
  EXPECT_NEAR(schedule.at(11), 0.2, 1e-12);
  for (int64_t step = 3; step < 12; ++step) EXPECT_LT(schedule.at(step), schedule.at(step - 1)) << step;

  schedule.type = ScheduleType::kConstant;
  EXPECT_DOUBLE_EQ(schedule.at(11), 2.0);
  EXPECT_DOUBLE_EQ(schedule.at(0), 1.0);
}

TEST(Schedule, InvalidSettingsAreRejected) {
  LrSchedule schedule;
  schedule.type = ScheduleType::kWSD;
  schedule.total_steps = 10;
  schedule.warmup_steps = 5;
  schedule.decay_steps = 6;
  EXPECT_THROW(schedule.validate(), Error);
  EXPECT_THROW(parse_schedule_type("linear"), Error);
}

}  // namespace
}  // namespace ropepp::train
