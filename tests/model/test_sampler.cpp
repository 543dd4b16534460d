#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/sampler.h"

namespace ropepp {
namespace {

TEST(Sampler, GreedyPicksFirstMaximum) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  Sampler greedy(SamplerOptions{true});
  EXPECT_EQ(greedy.sample(logits.data(), 4), 1);
  SamplerOptions zero_temperature;
  zero_temperature.temperature = 0.0;
  EXPECT_EQ(Sampler(zero_temperature).sample(logits.data(), 4), 1);
  SamplerOptions top1;
  top1.top_k = 1;
  top1.seed = 5;
  Sampler top1_sampler(top1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(top1_sampler.sample(logits.data(), 4), 1);
}

// 40000 draws: the standard error of each frequency is below 0.0025, so a
// tolerance of 0.01 is 4 standard errors.
TEST(Sampler, FrequenciesFollowTemperatureSoftmax) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f};
  for (double temperature : {1.0, 2.0}) {
    SamplerOptions options;
    options.temperature = temperature;
    options.seed = 123;
    Sampler sampler(options);
    std::vector<int> counts(3, 0);
    const int draws = 40000;
    for (int i = 0; i < draws; ++i) ++counts[sampler.sample(logits.data(), 3)];
    double total = 0.0;
    for (float logit : logits) total += std::exp(logit / temperature);
    for (int t = 0; t < 3; ++t) {
      EXPECT_NEAR(static_cast<double>(counts[t]) / draws, std::exp(logits[t] / temperature) / total, 0.01)
          << "temperature " << temperature << " token " << t;
    }
  }
}

TEST(Sampler, TopPDropsTheTail) {
  // Probabilities 0.6, 0.3, 0.1 (logits are their logs): top-p 0.8 keeps tokens 0 and 1.
  const std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplerOptions options;
  options.top_p = 0.8;
  options.seed = 9;
  Sampler sampler(options);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 20000; ++i) ++counts[sampler.sample(logits.data(), 3)];
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 20000.0, 2.0 / 3.0, 0.015);
}

// 1000 equal logits: the nucleus of top-p 0.5 is ids 0..499 (ties go to the
// lowest ids), which is larger than the first sorted prefix of 256.
TEST(Sampler, TopPNucleusBeyondFirstPrefix) {
  const std::vector<float> logits(1000, 0.5f);
  SamplerOptions options;
  options.top_p = 0.5;
  options.seed = 3;
  Sampler sampler(options);
  int max_token = 0;
  for (int i = 0; i < 5000; ++i) max_token = std::max(max_token, sampler.sample(logits.data(), 1000));
  EXPECT_LT(max_token, 500);
  EXPECT_GT(max_token, 400);
}

TEST(Sampler, TopKDropsTheTail) {
  const std::vector<float> logits = {0.0f, 3.0f, 2.9f, 1.0f};
  SamplerOptions options;
  options.top_k = 2;
  options.seed = 4;
  Sampler sampler(options);
  for (int i = 0; i < 2000; ++i) {
    const int token = sampler.sample(logits.data(), 4);
    EXPECT_TRUE(token == 1 || token == 2) << token;
  }
}

TEST(Sampler, SameSeedSameSequence) {
  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  SamplerOptions options;
  options.seed = 77;
  Sampler a(options), b(options);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(logits.data(), 5), b.sample(logits.data(), 5));
}

TEST(Sampler, InvalidOptionsAreRejected) {
  SamplerOptions negative_temperature;
  negative_temperature.temperature = -1.0;
  EXPECT_THROW(Sampler{negative_temperature}, Error);
  SamplerOptions bad_top_p;
  bad_top_p.top_p = 0.0;
  EXPECT_THROW(Sampler{bad_top_p}, Error);
  SamplerOptions bad_top_k;
  bad_top_k.top_k = -2;
  EXPECT_THROW(Sampler{bad_top_k}, Error);
}

}  // namespace
}  // namespace ropepp
