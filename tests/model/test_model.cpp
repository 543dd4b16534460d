// Model behaviour that needs no external reference: KV-cache decoding equals
// prefill, causality, packed batches, checkpoint round trips and the
// evaluation options.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/model.h"
#include "model_test_util.h"

namespace ropepp {
namespace {

using test::TempDir;
using test::tiny_config;

std::vector<float> rows(const std::vector<float>& logits, int64_t begin, int64_t end, int vocab) {
  return std::vector<float>(logits.begin() + begin * vocab, logits.begin() + end * vocab);
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

struct DecodeCase {
  Variant variant;
  CacheType cache;
  MatmulPrecision precision;
  double tolerance;
};

// Prefill of 5 tokens into the cache, then one token at a time: each step's
// logits must match the prefill of the whole sequence. f32 cache: only the
// summation order differs (1e-5). bf16 cache: keys and values are rounded to
// bf16 (relative error 2^-9), which moves logits by well under 2e-2.
TEST(ModelDecode, MatchesPrefillEveryVariant) {
  const std::vector<DecodeCase> cases = {
      {Variant::kVanilla, CacheType::kF32, MatmulPrecision::kF32, 1e-5},
      {Variant::kEH, CacheType::kF32, MatmulPrecision::kF32, 1e-5},
      {Variant::kEC, CacheType::kF32, MatmulPrecision::kF32, 1e-5},
      {Variant::kVanilla, CacheType::kBF16, MatmulPrecision::kF32, 2e-2},
      {Variant::kEH, CacheType::kBF16, MatmulPrecision::kF32, 2e-2},
      {Variant::kEC, CacheType::kBF16, MatmulPrecision::kF32, 2e-2},
      // bf16 weights: GEMV (decode) and oneDNN GEMM (prefill) round the same
      // operands, so only the summation order differs.
      {Variant::kEC, CacheType::kF32, MatmulPrecision::kBF16, 1e-4},
  };
  const int64_t n_tokens = 23;
  const int64_t n_prefill = 5;
  for (const DecodeCase& c : cases) {
    SCOPED_TRACE(variant_name(c.variant) + (c.cache == CacheType::kBF16 ? " bf16 cache" : " f32 cache") +
                 " weights " + matmul_precision_name(c.precision));
    ModelOptions options;
    options.weights_precision = c.precision;
    Model model = Model::random(tiny_config(c.variant, false, test::scaling_of(RopeScalingType::kYarnHF, 4.0)),
                                17, options);
    const int vocab = model.config().vocab_size;
    const std::vector<int32_t> tokens = test::random_tokens(n_tokens, vocab, 3);
    const std::vector<float> full = model.logits(tokens);

    KVCache cache = model.make_cache(64, c.cache);
    std::vector<float> step(static_cast<size_t>(n_prefill * vocab));
    ForwardInput prefill;
    prefill.tokens = std::span<const int32_t>(tokens.data(), n_prefill);
    model.forward(prefill, step.data(), {}, &cache);
    EXPECT_LT(test::relative_max_error(step, rows(full, 0, n_prefill, vocab)), c.tolerance);
    for (int64_t t = n_prefill; t < n_tokens; ++t) {
      std::vector<float> logits(static_cast<size_t>(vocab));
      model.decode(tokens[t], cache, logits.data());
      EXPECT_LT(test::relative_max_error(logits, rows(full, t, t + 1, vocab)), c.tolerance) << "token " << t;
    }
    EXPECT_EQ(cache.length(), n_tokens);
  }
}

TEST(ModelDecode, EhCacheIsHalfOfVanilla) {
  const Model vanilla = Model::random(tiny_config(Variant::kVanilla), 1);
  const Model eh = Model::random(tiny_config(Variant::kEH), 1);
  const Model ec = Model::random(tiny_config(Variant::kEC), 1);
  EXPECT_EQ(2 * eh.make_cache(100).bytes(), vanilla.make_cache(100).bytes());
  EXPECT_EQ(ec.make_cache(100).bytes(), vanilla.make_cache(100).bytes());
}

TEST(ModelDecode, FullCacheIsRejected) {
  Model model = Model::random(tiny_config(Variant::kEC), 1);
  KVCache cache = model.make_cache(4);
  const std::vector<int32_t> tokens = {5, 6, 7, 8, 9};
  std::vector<float> logits(tokens.size() * 97);
  ForwardInput input;
  input.tokens = tokens;
  EXPECT_THROW(model.forward(input, logits.data(), {}, &cache), Error);
}

TEST(ModelForward, LogitsDoNotDependOnLaterTokens) {
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    SCOPED_TRACE(variant_name(variant));
    Model model = Model::random(tiny_config(variant), 5);
    std::vector<int32_t> tokens = test::random_tokens(20, 97, 11);
    const std::vector<float> before = model.logits(tokens);
    for (size_t t = 12; t < tokens.size(); ++t) tokens[t] = (tokens[t] + 31) % 97;
    const std::vector<float> after = model.logits(tokens);
    EXPECT_LT(test::relative_max_error(rows(after, 0, 12, 97), rows(before, 0, 12, 97)), 1e-6);
    // The changed tokens themselves must change their logits, or the check above proves nothing.
    EXPECT_GT(test::relative_max_error(rows(after, 12, 20, 97), rows(before, 12, 20, 97)), 1e-3);
  }
}

TEST(ModelForward, PackedBatchEqualsSeparateRuns) {
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    SCOPED_TRACE(variant_name(variant));
    Model model = Model::random(tiny_config(variant), 9);
    const std::vector<int32_t> first = test::random_tokens(7, 97, 1);
    const std::vector<int32_t> second = test::random_tokens(12, 97, 2);

    std::vector<int32_t> tokens = first, positions, segments;
    tokens.insert(tokens.end(), second.begin(), second.end());
    for (int i = 0; i < 7; ++i) {
      positions.push_back(i);
      segments.push_back(0);
    }
    for (int i = 0; i < 12; ++i) {
      positions.push_back(i);
      segments.push_back(1);
    }
    std::vector<float> packed(tokens.size() * 97);
    ForwardInput input{tokens, positions, segments};
    model.forward(input, packed.data());

    EXPECT_LT(test::relative_max_error(rows(packed, 0, 7, 97), model.logits(first)), 1e-5);
    EXPECT_LT(test::relative_max_error(rows(packed, 7, 19, 97), model.logits(second)), 1e-5);
  }
}

TEST(ModelForward, LogitsStartSelectsLastRows) {
  Model model = Model::random(tiny_config(Variant::kEC), 2);
  const std::vector<int32_t> tokens = test::random_tokens(9, 97, 4);
  const std::vector<float> all = model.logits(tokens);
  ForwardOptions options;
  options.logits_start = 8;
  std::vector<float> last(97);
  ForwardInput input;
  input.tokens = tokens;
  model.forward(input, last.data(), options);
  EXPECT_LT(test::relative_max_error(last, rows(all, 8, 9, 97)), 1e-6);
}

TEST(ModelForward, RopeOverrideEqualsConfigScaling) {
  const RopeScaling linear = test::scaling_of(RopeScalingType::kLinear, 4.0);
  Weights weights = Weights::random(tiny_config(Variant::kEH), 21, 0.2);
  Model plain(weights);
  ModelConfig scaled_config = tiny_config(Variant::kEH, false, linear);
  scaled_config.rope_theta = 50000.0;
  Weights scaled_weights = Weights::zeros(scaled_config);
  std::copy(weights.data(), weights.data() + weights.size(), scaled_weights.data());
  Model scaled(std::move(scaled_weights));

  const std::vector<int32_t> tokens = test::random_tokens(15, 97, 8);
  ForwardOptions options;
  options.rope = RopeParams{0, 50000.0, linear};
  const std::vector<float> overridden = plain.logits(tokens, options);
  EXPECT_LT(test::relative_max_error(overridden, scaled.logits(tokens)), 1e-6);
  EXPECT_GT(test::relative_max_error(overridden, plain.logits(tokens)), 1e-3);
}

TEST(ModelForward, QueryNoiseTouchesOnlyItsSide) {
  const std::vector<int32_t> tokens = test::random_tokens(15, 97, 8);
  Model vanilla = Model::random(tiny_config(Variant::kVanilla), 3);
  Model ec = Model::random(tiny_config(Variant::kEC), 3);
  ForwardOptions zero_noise;
  zero_noise.noise = QueryNoise{NoiseSide::kImaginary, 0.0, 1};
  ForwardOptions imaginary_noise;
  imaginary_noise.noise = QueryNoise{NoiseSide::kImaginary, 1.0, 1};
  ForwardOptions real_noise;
  real_noise.noise = QueryNoise{NoiseSide::kReal, 1.0, 1};

  EXPECT_EQ(ec.logits(tokens, zero_noise), ec.logits(tokens));
  // Noise on the real side must leave the imaginary heads alone and the other
  // way round, so the two perturbations differ.
  EXPECT_GT(test::relative_max_error(ec.logits(tokens, imaginary_noise), ec.logits(tokens, real_noise)), 1e-4);
  // Vanilla RoPE has no imaginary heads to add noise to.
  EXPECT_THROW(vanilla.logits(tokens, imaginary_noise), Error);
  EXPECT_GT(test::relative_max_error(ec.logits(tokens, imaginary_noise), ec.logits(tokens)), 1e-4);
  EXPECT_GT(test::relative_max_error(vanilla.logits(tokens, real_noise), vanilla.logits(tokens)), 1e-4);
}

TEST(ModelForward, AttentionCaptureRowsAreCausalDistributions) {
  Model model = Model::random(tiny_config(Variant::kEC), 3);
  const std::vector<int32_t> tokens = test::random_tokens(10, 97, 8);
  ForwardOptions options;
  options.capture = {AttentionCaptureRequest{1, {0, 1, 7}}};
  std::vector<float> logits(tokens.size() * 97);
  ForwardInput input;
  input.tokens = tokens;
  const ForwardOutput output = model.forward(input, logits.data(), options);
  ASSERT_EQ(output.attention.size(), 1u);
  const AttentionCapture& capture = output.attention[0];
  ASSERT_EQ(capture.probs.size(), 3u * 10 * 10);
  for (int h = 0; h < 3; ++h) {
    for (int i = 0; i < 10; ++i) {
      double sum = 0.0;
      for (int j = 0; j < 10; ++j) {
        const float p = capture.probs[(h * 10 + i) * 10 + j];
        if (j > i) {
          EXPECT_EQ(p, 0.0f) << "head " << h << " query " << i << " key " << j;
        }
        sum += p;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << "head " << h << " query " << i;
    }
  }
  options.capture = {AttentionCaptureRequest{1, {8}}};  // EC with H=4 has 8 heads: 0..7
  EXPECT_THROW(model.forward(input, logits.data(), options), Error);
}

TEST(ModelForward, BadInputIsRejected) {
  Model model = Model::random(tiny_config(Variant::kVanilla), 3);
  std::vector<float> logits(4 * 97);
  const std::vector<int32_t> bad_token = {1, 2, 97};
  EXPECT_THROW(model.logits(bad_token), Error);
  const std::vector<int32_t> tokens = {1, 2, 3};
  const std::vector<int32_t> short_positions = {0, 1};
  EXPECT_THROW(model.forward(ForwardInput{tokens, short_positions, {}}, logits.data()), Error);
  const std::vector<int32_t> negative_positions = {0, -1, 2};
  EXPECT_THROW(model.forward(ForwardInput{tokens, negative_positions, {}}, logits.data()), Error);
  EXPECT_THROW(model.logits(std::vector<int32_t>{}), Error);
}

TEST(ModelCheckpoint, F32RoundTripIsBitIdentical) {
  for (bool tied : {false, true}) {
    TempDir temp;
    const Weights original = Weights::random(tiny_config(Variant::kEC, tied), 77);
    original.save(temp.path() / "a", DType::kF32);
    const Weights loaded = Weights::load(temp.path() / "a");
    ASSERT_EQ(loaded.size(), original.size());
    EXPECT_EQ(std::memcmp(loaded.data(), original.data(), sizeof(float) * original.size()), 0);
    loaded.save(temp.path() / "b", DType::kF32);
    EXPECT_EQ(read_bytes(temp.path() / "a" / "model.safetensors"),
              read_bytes(temp.path() / "b" / "model.safetensors"));
    EXPECT_EQ(read_bytes(temp.path() / "a" / "config.json"), read_bytes(temp.path() / "b" / "config.json"));
  }
}

TEST(ModelCheckpoint, Bf16RoundTripIsBitIdentical) {
  TempDir temp;
  const Weights original = Weights::random(tiny_config(Variant::kEH), 78);
  original.save(temp.path() / "a", DType::kBF16);
  const Weights loaded = Weights::load(temp.path() / "a");
  for (int64_t i = 0; i < original.size(); ++i) {
    ASSERT_EQ(loaded.data()[i], bf16_to_float(float_to_bf16(original.data()[i]))) << "element " << i;
  }
  loaded.save(temp.path() / "b", DType::kBF16);
  EXPECT_EQ(read_bytes(temp.path() / "a" / "model.safetensors"), read_bytes(temp.path() / "b" / "model.safetensors"));
}

TEST(ModelWeights, LayoutMatchesCheckpointShapes) {
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (bool tied : {false, true}) {
      const ModelConfig config = tiny_config(variant, tied);
      const Weights weights = Weights::zeros(config);
      const auto expected = expected_tensor_shapes(config);
      EXPECT_EQ(weights.parameters().size(), expected.size());
      int64_t total = 0;
      for (const ParameterInfo& info : weights.parameters()) {
        ASSERT_TRUE(expected.count(info.name)) << info.name;
        EXPECT_EQ(info.shape, expected.at(info.name)) << info.name;
        EXPECT_EQ(info.offset, total) << info.name;
        total += info.numel;
      }
      EXPECT_EQ(total, weights.size());
      EXPECT_EQ(total, config.parameter_count());
    }
  }
}

TEST(ModelWeights, RandomInitIsNormalWithUnitNorms) {
  const Weights weights = Weights::random(tiny_config(Variant::kVanilla), 5, 0.02);
  const ParameterInfo& embed = weights.info("model.embed_tokens.weight");
  double sum = 0.0, sum_squares = 0.0;
  for (int64_t i = 0; i < embed.numel; ++i) {
    const double value = weights.data()[embed.offset + i];
    sum += value;
    sum_squares += value * value;
  }
  const double mean = sum / embed.numel;
  const double stddev = std::sqrt(sum_squares / embed.numel - mean * mean);
  // 4656 samples: the standard error of the stddev estimate is ~1%.
  EXPECT_NEAR(stddev, 0.02, 0.001);
  EXPECT_NEAR(mean, 0.0, 0.0015);
  const float* norm = weights.final_norm();
  for (int i = 0; i < 48; ++i) EXPECT_EQ(norm[i], 1.0f);
  const Weights again = Weights::random(tiny_config(Variant::kVanilla), 5, 0.02);
  EXPECT_EQ(std::memcmp(again.data(), weights.data(), sizeof(float) * weights.size()), 0);
}

}  // namespace
}  // namespace ropepp
