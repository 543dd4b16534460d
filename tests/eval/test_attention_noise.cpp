#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/attention_map.h"
#include "eval/noise.h"
#include "tokenizer/byte_tokenizer.h"
#include "tiny_model.h"

namespace ropepp::eval {
namespace {

using testing_support::pseudo_text;
using testing_support::tiny_model;

TEST(AttentionMaps, RowsSumToOneAndRespectCausalMask) {
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    SCOPED_TRACE(variant_name(variant));
    Model model = tiny_model(variant);
    const std::vector<int32_t> tokens = pseudo_text(24);
    AttentionMapOptions options;
    options.query_heads = {0, 1};
    const AttentionMaps maps = compute_attention_maps(model, tokens, options);

    const HeadLayout& layout = model.head_layout();
    const size_t heads_per_query = layout.imaginary ? 2 : 1;
    ASSERT_EQ(maps.maps.size(), 2u * 2u * heads_per_query) << "2 layers x 2 query heads";
    const int64_t n = 24;
    for (const HeadMap& map : maps.maps) {
      ASSERT_EQ(map.probs.size(), static_cast<size_t>(n * n));
      EXPECT_EQ(map.imaginary, layout.is_imaginary_head(map.attention_head));
      for (int64_t i = 0; i < n; ++i) {
        double row = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          const float p = map.probs[i * n + j];
          if (j > i) {
            EXPECT_EQ(p, 0.0f) << "future key " << j << " visible to query " << i;
          } else {
            EXPECT_GE(p, 0.0f);
          }
          row += p;
        }
        // f32 probabilities of at most 24 terms.
        EXPECT_NEAR(row, 1.0, 1e-5) << "layer " << map.layer << " head " << map.attention_head << " row " << i;
      }
    }

    // Distance profile: per kind, query 0 puts all its mass at distance 0, so
    // the mean mass at distance 0 is >= 1/n; masses lie in [0, 1].
    ASSERT_EQ(maps.distance_mass_real.size(), static_cast<size_t>(n));
    EXPECT_EQ(maps.distance_mass_imaginary.empty(), !layout.imaginary);
    for (double mass : maps.distance_mass_real) {
      EXPECT_GE(mass, 0.0);
      EXPECT_LE(mass, 1.0 + 1e-6);
    }
    EXPECT_GE(maps.distance_mass_real[0], 1.0 / n - 1e-6);
  }
}

TEST(AttentionMaps, DistanceMassAveragesTheMaps) {
  Model model = tiny_model(Variant::kEC);
  const std::vector<int32_t> tokens = pseudo_text(12);
  AttentionMapOptions options;
  options.layers = {1};
  options.query_heads = {0, 1, 2, 3};
  const AttentionMaps maps = compute_attention_maps(model, tokens, options);
  const int64_t n = 12;
  for (int64_t dt : {0, 3, 11}) {
    double real = 0.0, imaginary = 0.0;
    int real_heads = 0, imaginary_heads = 0;
    for (const HeadMap& map : maps.maps) {
      double sum = 0.0;
      for (int64_t i = dt; i < n; ++i) sum += map.probs[i * n + i - dt];
      (map.imaginary ? imaginary : real) += sum / (n - dt);
      (map.imaginary ? imaginary_heads : real_heads) += 1;
    }
    EXPECT_NEAR(maps.distance_mass_real[dt], real / real_heads, 1e-6);
    EXPECT_NEAR(maps.distance_mass_imaginary[dt], imaginary / imaginary_heads, 1e-6);
  }
}

TEST(AttentionMaps, InvalidSelectionRejected) {
  Model model = tiny_model(Variant::kEH);
  const std::vector<int32_t> tokens = pseudo_text(8);
  AttentionMapOptions options;
  options.layers = {2};
  EXPECT_THROW(compute_attention_maps(model, tokens, options), Error);
  options.layers = {0};
  options.query_heads = {2};  // EH with H = 4 has 2 query heads
  EXPECT_THROW(compute_attention_maps(model, tokens, options), Error);
}

NoiseOptions small_noise_options() {
  NoiseOptions options;
  options.stddevs = {0.0, 1.0};
  options.seed = 9;
  options.perplexity_length = 48;
  options.perplexity_tokens = 96;
  options.passkey.lengths = {300};
  options.passkey.depths = {0.5};
  options.passkey.trials = 1;
  options.progress = false;
  return options;
}

TEST(NoiseAblation, ZeroNoiseReproducesNoiselessMetric) {
  const ByteTokenizer tokenizer;
  const std::vector<int32_t> text = pseudo_text(1200);
  for (Variant variant : {Variant::kVanilla, Variant::kEC}) {
    SCOPED_TRACE(variant_name(variant));
    Model model = tiny_model(variant);
    const NoiseOptions options = small_noise_options();
    const std::vector<NoisePoint> points = evaluate_noise(model, tokenizer, text, options);

    // The noiseless metrics, computed without the ablation.
    ExtrapolationOptions perplexity;
    perplexity.lengths = {48};
    perplexity.tokens_per_length = 96;
    perplexity.progress = false;
    const double clean_ppl = evaluate_extrapolation(model, text, tokenizer.bos_id(), perplexity)[0].all.perplexity();
    PasskeyOptions passkey = options.passkey;
    passkey.progress = false;
    const double clean_accuracy = evaluate_passkey(model, tokenizer, text, passkey).mean_accuracy();

    const size_t sides = variant == Variant::kVanilla ? 1 : 2;
    ASSERT_EQ(points.size(), 2 * sides) << "a vanilla model has no imaginary side";
    for (const NoisePoint& point : points) {
      SCOPED_TRACE(noise_side_name(point.side) + " stddev " + std::to_string(point.stddev));
      if (point.stddev == 0.0) {
        EXPECT_EQ(point.perplexity, clean_ppl) << "zero noise must reproduce the metric exactly";
        EXPECT_EQ(point.passkey_accuracy, clean_accuracy);
      } else {
        EXPECT_NE(point.perplexity, clean_ppl) << "noise of stddev 1 must change the perplexity";
      }
    }
  }
}

TEST(NoiseAblation, InvalidOptionsRejected) {
  const ByteTokenizer tokenizer;
  Model model = tiny_model(Variant::kEH);
  const std::vector<int32_t> text = pseudo_text(500);
  NoiseOptions options = small_noise_options();
  options.stddevs = {-0.5};
  EXPECT_THROW(evaluate_noise(model, tokenizer, text, options), Error);
  options = small_noise_options();
  options.perplexity_length = 0;
  options.passkey.lengths.clear();
  EXPECT_THROW(evaluate_noise(model, tokenizer, text, options), Error) << "no metric";
}

}  // namespace
}  // namespace ropepp::eval
