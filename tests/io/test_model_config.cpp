#include <nlohmann/json.hpp>

#include "io/model_config.h"
#include "io_test_util.h"

namespace ropepp::testing {
namespace {

using json = nlohmann::json;

// The 376M shape of the RoPE++ paper (Liu et al. 2025) with the keys its authors write.
json paper_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 1024, "intermediate_size": 3584, "num_hidden_layers": 8,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 128,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "max_position_embeddings": 4096,
    "vocab_size": 128256, "tie_word_embeddings": false,
    "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
    "rope_config": {"imag": true, "imag_mode": "imag2"}
  })");
}

json minimal_config() {
  return json::parse(R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                         "num_attention_heads": 4})");
}

TEST(ModelConfig, ReadsPaperConfig) {
  const ModelConfig config = model_config_from_json(paper_config(), "config.json");
  EXPECT_EQ(config.variant, Variant::kEC);
  EXPECT_EQ(config.hidden_size, 1024);
  EXPECT_EQ(config.num_key_value_heads, 4);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.vocab_size, 128256);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_EQ(config.bos_token_id, 128000);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{128001});
  EXPECT_EQ(config.rope_scaling.type, RopeScalingType::kNone);
}

TEST(ModelConfig, MissingKeysUseHfDefaults) {
  const ModelConfig config = model_config_from_json(minimal_config(), "config.json");
  EXPECT_EQ(config.variant, Variant::kVanilla);
  EXPECT_EQ(config.num_key_value_heads, 4);  // = num_attention_heads
  EXPECT_EQ(config.head_dim, 16);            // = hidden_size / num_attention_heads
  EXPECT_EQ(config.vocab_size, 32000);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_EQ(config.max_position_embeddings, 2048);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{2});
}

TEST(ModelConfig, ImagDecidesVariant) {
  json config = paper_config();
  config["rope_config"] = {{"imag", false}, {"imag_mode", "imag2"}};
  EXPECT_EQ(model_config_from_json(config, "c").variant, Variant::kVanilla);
  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}};
  EXPECT_EQ(model_config_from_json(config, "c").variant, Variant::kEH);
  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag2"}};
  EXPECT_EQ(model_config_from_json(config, "c").variant, Variant::kEC);
  config.erase("rope_config");
  EXPECT_EQ(model_config_from_json(config, "c").variant, Variant::kVanilla);
}

TEST(ModelConfig, EosTokenIdForms) {
  json config = paper_config();
  config["eos_token_id"] = {128001, 128009};
  EXPECT_EQ(model_config_from_json(config, "c").eos_token_ids, (std::vector<int>{128001, 128009}));
  config["eos_token_id"] = nullptr;
  EXPECT_TRUE(model_config_from_json(config, "c").eos_token_ids.empty());
  config["bos_token_id"] = nullptr;
  EXPECT_EQ(model_config_from_json(config, "c").bos_token_id, -1);
}

TEST(ModelConfig, RopeConfigScalings) {
  json config = paper_config();
  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}, {"factor", 8.0}};
  ModelConfig parsed = model_config_from_json(config, "c");
  EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.factor, 8.0);

  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}, {"factor", 32}, {"yarn", true}};
  parsed = model_config_from_json(config, "c");
  EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::kYarnPaper);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.factor, 32.0);
  EXPECT_EQ(parsed.rope_scaling.original_max_position, 4096);

  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}, {"factor", 4}, {"yarn", false}};
  EXPECT_EQ(model_config_from_json(config, "c").rope_scaling.type, RopeScalingType::kLinear);
}

TEST(ModelConfig, StandardRopeScaling) {
  json config = paper_config();
  config.erase("rope_config");
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  ModelConfig parsed = model_config_from_json(config, "c");
  EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.factor, 4.0);

  config["rope_scaling"] = {{"rope_type", "yarn"},        {"factor", 8.0},     {"original_max_position_embeddings", 4096},
                            {"beta_fast", 16.0},          {"beta_slow", 2.0},  {"attention_factor", 1.25}};
  parsed = model_config_from_json(config, "c");
  EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::kYarnHF);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.factor, 8.0);
  EXPECT_EQ(parsed.rope_scaling.original_max_position, 4096);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.beta_fast, 16.0);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.beta_slow, 2.0);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.attention_factor, 1.25);

  config["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(model_config_from_json(config, "c").rope_scaling.type, RopeScalingType::kNone);
}

TEST(ModelConfig, ConflictingScalingsRejected) {
  json config = paper_config();
  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag2"}, {"factor", 8.0}};
  config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  EXPECT_EQ(model_config_from_json(config, "c").rope_scaling.type, RopeScalingType::kLinear);
  config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 4.0}};
  expect_error([&] { model_config_from_json(config, "cfg.json"); }, {"cfg.json", "rope_config", "rope_scaling"});
}

TEST(ModelConfig, JsonRoundTripAllVariants) {
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const RopeScalingType type :
         {RopeScalingType::kNone, RopeScalingType::kLinear, RopeScalingType::kYarnPaper, RopeScalingType::kYarnHF}) {
      ModelConfig config = small_config(variant);
      config.rope_theta = 500000.0;
      config.eos_token_ids = {2, 3};
      config.rope_scaling.type = type;
      if (type != RopeScalingType::kNone) config.rope_scaling.factor = 8.0;
      if (type == RopeScalingType::kYarnHF) config.rope_scaling.original_max_position = 4096;

      const json written = json::parse(model_config_to_json(config).dump());
      const ModelConfig parsed = model_config_from_json(written, "round trip");
      EXPECT_EQ(parsed.variant, variant);
      EXPECT_EQ(parsed.rope_scaling.type, type);
      EXPECT_DOUBLE_EQ(parsed.rope_scaling.factor, config.rope_scaling.factor);
      EXPECT_EQ(parsed.hidden_size, config.hidden_size);
      EXPECT_EQ(parsed.num_key_value_heads, config.num_key_value_heads);
      EXPECT_EQ(parsed.head_dim, config.head_dim);
      EXPECT_EQ(parsed.vocab_size, config.vocab_size);
      EXPECT_DOUBLE_EQ(parsed.rms_norm_eps, config.rms_norm_eps);
      EXPECT_DOUBLE_EQ(parsed.rope_theta, 500000.0);
      EXPECT_EQ(parsed.max_position_embeddings, config.max_position_embeddings);
      EXPECT_EQ(parsed.eos_token_ids, config.eos_token_ids);
      EXPECT_EQ(parsed.torch_dtype, config.torch_dtype);
    }
  }
}

// The authors' code indexes rope_config["imag"] and ["imag_mode"] and treats a
// present "factor" as scaling, so factor and yarn must appear only with scaling.
TEST(ModelConfig, WrittenRopeConfigMatchesAuthors) {
  ModelConfig config = small_config(Variant::kVanilla);
  json written = json::parse(model_config_to_json(config).dump());
  EXPECT_EQ(written["rope_config"], json::parse(R"({"imag": false, "imag_mode": "imag1"})"));
  EXPECT_TRUE(written["rope_scaling"].is_null());

  config.variant = Variant::kEH;
  written = json::parse(model_config_to_json(config).dump());
  EXPECT_EQ(written["rope_config"], json::parse(R"({"imag": true, "imag_mode": "imag1"})"));

  config.variant = Variant::kEC;
  config.rope_scaling.type = RopeScalingType::kYarnPaper;
  config.rope_scaling.factor = 32.0;
  written = json::parse(model_config_to_json(config).dump());
  EXPECT_EQ(written["rope_config"], json::parse(R"({"imag": true, "imag_mode": "imag2", "factor": 32.0, "yarn": true})"));
  EXPECT_TRUE(written["rope_scaling"].is_null());

  config.rope_scaling.type = RopeScalingType::kLinear;
  config.rope_scaling.factor = 8.0;
  written = json::parse(model_config_to_json(config).dump());
  EXPECT_EQ(written["rope_config"]["factor"], 8.0);
  EXPECT_EQ(written["rope_config"]["yarn"], false);
  EXPECT_EQ(written["rope_scaling"], json::parse(R"({"rope_type": "linear", "factor": 8.0})"));

  for (const char* key : {"architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
                          "max_position_embeddings", "vocab_size", "tie_word_embeddings", "bos_token_id",
                          "eos_token_id", "torch_dtype"}) {
    EXPECT_TRUE(written.contains(key)) << key;
  }
}

TEST_F(ScratchTest, ConfigFileRoundTrip) {
  ModelConfig config = small_config(Variant::kEH, true);
  write_model_config(scratch_ / "config.json", config);
  const ModelConfig from_folder = read_model_config(scratch_);
  EXPECT_EQ(from_folder.variant, Variant::kEH);
  EXPECT_TRUE(from_folder.tie_word_embeddings);
  EXPECT_EQ(model_config_to_json(from_folder), model_config_to_json(config));
}

TEST_F(ScratchTest, ConfigFileErrors) {
  expect_error([&] { read_model_config(scratch_); }, {"config.json", "not found"});
  write_bytes(scratch_ / "config.json", "{\"hidden_size\": 64,");
  expect_error([&] { read_model_config(scratch_); }, {"config.json", "invalid JSON"});
  write_bytes(scratch_ / "config.json", "{\"hidden_size\": 1e99999}");
  expect_error([&] { read_model_config(scratch_); }, {"config.json", "invalid JSON", "overflow"});
  write_bytes(scratch_ / "config.json", "[1, 2]");
  expect_error([&] { read_model_config(scratch_); }, {"config.json", "JSON object"});
}

// Each case: a change to a valid config and the words its error must contain.
struct BadConfigCase {
  const char* patch;
  std::vector<std::string> expected;
};

TEST(ModelConfig, InvalidFieldsNameFileAndKey) {
  const std::vector<BadConfigCase> cases = {
      {R"({"hidden_size": "1024"})", {"hidden_size", "expected an integer", "string"}},
      {R"({"hidden_size": 10.5})", {"hidden_size", "expected an integer"}},
      {R"({"hidden_size": -4})", {"hidden_size", "[1,"}},
      {R"({"hidden_size": null})", {"missing key hidden_size"}},
      {R"({"num_hidden_layers": null})", {"missing key num_hidden_layers"}},
      {R"({"intermediate_size": true})", {"intermediate_size", "expected an integer"}},
      {R"({"num_attention_heads": 0})", {"num_attention_heads"}},
      {R"({"num_key_value_heads": 3})", {"num_key_value_heads 3 does not divide num_attention_heads 8"}},
      {R"({"head_dim": 7})", {"head_dim 7", "even"}},
      {R"({"rms_norm_eps": "1e-5"})", {"rms_norm_eps", "expected a number"}},
      {R"({"rms_norm_eps": 0})", {"rms_norm_eps", "> 0"}},
      {R"({"rope_theta": 1.0})", {"rope_theta"}},
      {R"({"tie_word_embeddings": "false"})", {"tie_word_embeddings", "true or false"}},
      {R"({"vocab_size": 1000})", {"bos_token_id 128000"}},
      {R"({"eos_token_id": [128001, "x"]})", {"eos_token_id[1]"}},
      {R"({"model_type": "mistral"})", {"model_type", "mistral"}},
      {R"({"hidden_act": "gelu"})", {"hidden_act", "gelu"}},
      {R"({"attention_bias": true})", {"attention_bias"}},
      {R"({"torch_dtype": "int8"})", {"torch_dtype", "int8"}},
      {R"({"rope_config": "imag"})", {"rope_config", "JSON object"}},
      {R"({"rope_config": {"imag_mode": "imag1"}})", {"rope_config.imag"}},
      {R"({"rope_config": {"imag": "true", "imag_mode": "imag1"}})", {"rope_config.imag", "true or false"}},
      {R"({"rope_config": {"imag": true, "imag_mode": "imagh"}})", {"rope_config.imag_mode", "imagh", "imag1"}},
      {R"({"rope_config": {"imag": true}})", {"rope_config.imag_mode"}},
      {R"({"rope_config": {"imag": true, "imag_mode": "imag1", "factor": 0.5}})", {"rope_config.factor", ">= 1"}},
      {R"({"rope_config": {"imag": true, "imag_mode": "imag1", "yarn": true}})", {"rope_config.factor is missing"}},
      {R"({"rope_config": {"imag": true, "imag_mode": "imag1", "factor": "8"}})", {"rope_config.factor", "number"}},
      {R"({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}})", {"rope_scaling.rope_type", "llama3"}},
      {R"({"rope_scaling": {"factor": 8.0}})", {"rope_scaling.rope_type"}},
      {R"({"rope_scaling": {"rope_type": "linear"}})", {"rope_scaling.factor"}},
      {R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "beta_fast": 1.0, "beta_slow": 2.0}})",
       {"beta_fast", "beta_slow"}},
  };
  for (const BadConfigCase& bad : cases) {
    SCOPED_TRACE(bad.patch);
    // Top-level keys are replaced whole, because a nested merge would keep old fields.
    // A null value removes the key.
    json config = paper_config();
    const json patch = json::parse(bad.patch);
    for (const auto& [key, value] : patch.items()) {
      if (value.is_null()) {
        config.erase(key);
      } else {
        config[key] = value;
      }
    }
    try {
      model_config_from_json(config, "/models/x/config.json");
      ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("/models/x/config.json"), std::string::npos) << message;
      for (const std::string& part : bad.expected) {
        EXPECT_NE(message.find(part), std::string::npos) << "lacks \"" << part << "\": " << message;
      }
    }
  }
}

TEST(ModelConfig, EhNeedsEvenHeadCounts) {
  json config = paper_config();
  config["num_attention_heads"] = 6;
  config["num_key_value_heads"] = 3;
  config["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}};
  expect_error([&] { model_config_from_json(config, "cfg.json"); }, {"cfg.json", "RoPE++EH", "even"});
  config["rope_config"]["imag_mode"] = "imag2";
  EXPECT_EQ(model_config_from_json(config, "cfg.json").variant, Variant::kEC);
}

TEST(ModelConfig, HiddenSizeMustDivideWithoutHeadDim) {
  json config = minimal_config();
  config["num_attention_heads"] = 5;
  expect_error([&] { model_config_from_json(config, "cfg.json"); }, {"cfg.json", "hidden_size 64", "head_dim"});
  config["head_dim"] = 16;
  EXPECT_EQ(model_config_from_json(config, "cfg.json").head_dim, 16);
}

TEST(ModelConfig, ParameterCountPerVariant) {
  // Per layer: the q, k, v and o projections, 3 MLP matrices and 2 norms, with hidden 32 and d 8.
  const auto expected = [](int64_t q_heads, int64_t kv_heads, int64_t attention_heads, bool tied) {
    const int64_t per_layer = 32 * q_heads * 8 + 2 * 32 * kv_heads * 8 + attention_heads * 8 * 32 + 3 * 32 * 48 + 2 * 32;
    return 61 * 32 * (tied ? 1 : 2) + 2 * per_layer + 32;
  };
  EXPECT_EQ(small_config(Variant::kVanilla).parameter_count(), expected(4, 2, 4, false));
  EXPECT_EQ(small_config(Variant::kEH).parameter_count(), expected(2, 1, 4, false));
  EXPECT_EQ(small_config(Variant::kEC, true).parameter_count(), expected(4, 2, 8, true));
}

}  // namespace
}  // namespace ropepp::testing
