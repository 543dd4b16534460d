#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/error.h"
#include "eval/perplexity.h"
#include "tiny_model.h"

namespace ropepp::eval {
namespace {

using testing_support::pseudo_text;
using testing_support::tiny_model;

// A model whose LM head is zero outputs all-zero logits: a uniform
// distribution over the vocabulary, whatever the input.
Model uniform_model(Variant variant) {
  Model model = tiny_model(variant);
  Weights& weights = model.mutable_weights();
  const ParameterInfo& head = weights.info(weights.lm_head_name());
  std::fill(weights.data() + head.offset, weights.data() + head.offset + head.numel, 0.0f);
  model.weights_changed();
  return model;
}

// NLL of every target 1 .. T-1 from one plain forward, for comparisons.
std::vector<double> full_forward_nll(Model& model, const std::vector<int32_t>& tokens) {
  const std::vector<float> logits = model.logits(tokens);
  const int64_t vocab = model.config().vocab_size;
  std::vector<double> nll;
  for (size_t j = 1; j < tokens.size(); ++j) {
    const float* row = logits.data() + (j - 1) * vocab;
    double max = row[0];
    for (int64_t v = 0; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    nll.push_back(max + std::log(sum) - row[tokens[j]]);
  }
  return nll;
}

TEST(Perplexity, UniformModelEqualsVocabularySize) {
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    SCOPED_TRACE(variant_name(variant));
    Model model = uniform_model(variant);
    const double vocab = model.config().vocab_size;
    std::vector<int32_t> tokens = pseudo_text(150);
    tokens.insert(tokens.begin(), 256);

    SlidingWindowOptions options;
    options.window = 32;
    options.stride = 8;
    options.progress = false;
    const NllSum sum = sliding_window_nll(model, tokens, 150, options);
    EXPECT_EQ(sum.targets, 150);
    // Relative 1e-6: logsumexp of 259 zeros in double, summed over 150 targets.
    EXPECT_NEAR(sum.perplexity(), vocab, vocab * 1e-6);
    EXPECT_NEAR(sum.bits_per_byte(), std::log2(vocab), 1e-6) << "one byte per token";

    ExtrapolationOptions extrapolation;
    extrapolation.lengths = {16, 64};
    extrapolation.tokens_per_length = 128;
    extrapolation.progress = false;
    for (const ExtrapolationPoint& point : evaluate_extrapolation(model, pseudo_text(300), 256, extrapolation)) {
      EXPECT_NEAR(point.all.perplexity(), vocab, vocab * 1e-6);
      EXPECT_NEAR(point.tail.perplexity(), vocab, vocab * 1e-6);
    }
  }
}

TEST(Perplexity, ChunkedScoringMatchesOneForward) {
  for (Variant variant : {Variant::kVanilla, Variant::kEC}) {
    SCOPED_TRACE(variant_name(variant));
    Model model = tiny_model(variant);
    const std::vector<int32_t> tokens = pseudo_text(45);
    const std::vector<double> expected = full_forward_nll(model, tokens);
    const int64_t row_bytes = model.config().vocab_size * 4;
    for (int64_t score_begin : {1, 2, 17, 44}) {
      // A budget of 1 and 7 rows forces the chunked KV-cache path.
      for (int64_t rows : {1, 7, 1000}) {
        SCOPED_TRACE(testing::Message() << "score_begin=" << score_begin << " rows=" << rows);
        const std::vector<double> nll = target_nll(model, tokens, score_begin, {}, rows * row_bytes);
        ASSERT_EQ(nll.size(), tokens.size() - score_begin);
        for (size_t i = 0; i < nll.size(); ++i) {
          // f32 forward through two different attention paths.
          EXPECT_NEAR(nll[i], expected[score_begin - 1 + i], 2e-4);
        }
      }
    }
  }
}

TEST(Perplexity, WindowCoveringTextEqualsFullForward) {
  Model model = tiny_model(Variant::kEH);
  const std::vector<int32_t> tokens = pseudo_text(40);
  const std::vector<double> expected = full_forward_nll(model, tokens);
  SlidingWindowOptions options;
  options.window = 64;
  options.stride = 16;
  options.progress = false;
  const NllSum sum = sliding_window_nll(model, tokens, 0, options);
  EXPECT_EQ(sum.targets, 39);
  EXPECT_NEAR(sum.nll, std::accumulate(expected.begin(), expected.end(), 0.0), 1e-3);
  EXPECT_TRUE(std::isnan(sum.bits_per_byte())) << "no byte count given";
}

TEST(Perplexity, SlidingWindowsMatchWindowsRunAlone) {
  Model model = tiny_model(Variant::kVanilla);
  const std::vector<int32_t> tokens = pseudo_text(60);
  SlidingWindowOptions options;
  options.window = 12;
  options.stride = 5;
  options.progress = false;
  const NllSum sum = sliding_window_nll(model, tokens, 0, options);

  // Each window's scored targets, computed from the window's tokens alone.
  double expected = 0.0;
  for (const Window& window : plan_sliding_windows(60, 12, 5)) {
    const std::vector<int32_t> piece(tokens.begin() + window.begin, tokens.begin() + window.end);
    const std::vector<double> nll = full_forward_nll(model, piece);
    for (int64_t j = window.score_begin; j < window.end; ++j) expected += nll[j - window.begin - 1];
  }
  EXPECT_EQ(sum.targets, 59);
  EXPECT_NEAR(sum.nll, expected, 1e-3);
}

TEST(Perplexity, InvalidRequestsRejected) {
  Model model = tiny_model(Variant::kVanilla);
  const std::vector<int32_t> tokens = pseudo_text(10);
  EXPECT_THROW(target_nll(model, tokens, 0), Error);
  EXPECT_THROW(target_nll(model, tokens, 11), Error);
  std::vector<int32_t> bad = tokens;
  bad[5] = 100000;
  EXPECT_THROW(target_nll(model, bad, 1), Error);
  EXPECT_THROW(doubling_lengths(2, 4), Error);
  EXPECT_EQ(doubling_lengths(64, 4), (std::vector<int64_t>{32, 64, 128, 256}));
}

}  // namespace
}  // namespace ropepp::eval
