#include "io/model_config.h"

#include <cmath>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/json_file.h"

namespace ropepp {
namespace {

using json = nlohmann::json;

// Upper bounds on the sizes in a config. They are far above any released
// Llama model and keep every element count of the model (vocab_size *
// hidden_size, layers * parameters per layer) exact in int64 arithmetic.
constexpr int64_t kMaxWidth = int64_t{1} << 20;       // hidden_size, intermediate_size, head_dim
constexpr int64_t kMaxVocabulary = int64_t{1} << 24;  // vocab_size
constexpr int64_t kMaxLayers = int64_t{1} << 12;
constexpr int64_t kMaxHeads = int64_t{1} << 14;

std::string json_type_name(const json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "number";
  return value.type_name();
}

// Short rendering of a value for error messages.
std::string show(const json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text + " (" + json_type_name(value) + ")";
}

// Reads typed keys of one JSON object and names `source` and the key path in
// every error.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string source, std::string prefix)
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  bool has(const std::string& key) const { return object_.contains(key) && !object_.at(key).is_null(); }

  std::string key_path(const std::string& key) const { return prefix_ + key; }

  // Returns an integer in [minimum, maximum]. A float with an integral value is accepted.
  int64_t integer(const std::string& key, int64_t minimum, int64_t maximum) const {
    const json& value = object_.at(key);
    int64_t result = 0;
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(maximum)) {
        fail("{}: invalid {}: expected an integer in [{}, {}], found {}", source_, key_path(key), minimum, maximum,
             show(value));
      }
      result = value.get<int64_t>();
    } else if (value.is_number_float() && std::isfinite(value.get<double>()) &&
               std::trunc(value.get<double>()) == value.get<double>() &&
               std::fabs(value.get<double>()) < 9.0e18) {
      result = static_cast<int64_t>(value.get<double>());
    } else {
      fail("{}: invalid {}: expected an integer, found {}", source_, key_path(key), show(value));
    }
    if (result < minimum || result > maximum) {
      fail("{}: invalid {}: expected an integer in [{}, {}], found {}", source_, key_path(key), minimum, maximum,
           result);
    }
    return result;
  }

  int64_t integer_or(const std::string& key, int64_t fallback, int64_t minimum, int64_t maximum) const {
    return has(key) ? integer(key, minimum, maximum) : fallback;
  }

  int64_t required_integer(const std::string& key, int64_t minimum, int64_t maximum) const {
    if (!has(key)) {
      fail("{}: missing key {}: a Llama config must set hidden_size, intermediate_size, num_hidden_layers and "
           "num_attention_heads (there is no safe default for the model's shape)",
           source_, key_path(key));
    }
    return integer(key, minimum, maximum);
  }

  // A finite number greater than `exclusive_minimum`.
  double number_or(const std::string& key, double fallback, double exclusive_minimum) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (!value.is_number()) {
      fail("{}: invalid {}: expected a number, found {}", source_, key_path(key), show(value));
    }
    const double result = value.get<double>();
    if (!std::isfinite(result) || result <= exclusive_minimum) {
      fail("{}: invalid {}: expected a finite number > {}, found {}", source_, key_path(key), exclusive_minimum,
           result);
    }
    return result;
  }

  bool boolean_or(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (!value.is_boolean()) {
      fail("{}: invalid {}: expected true or false, found {}", source_, key_path(key), show(value));
    }
    return value.get<bool>();
  }

  std::string string_or(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (!value.is_string()) {
      fail("{}: invalid {}: expected a string, found {}", source_, key_path(key), show(value));
    }
    return value.get<std::string>();
  }

  const json& object(const std::string& key) const {
    const json& value = object_.at(key);
    if (!value.is_object()) {
      fail("{}: invalid {}: expected a JSON object, found {}", source_, key_path(key), show(value));
    }
    return value;
  }

  const json& at(const std::string& key) const { return object_.at(key); }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

// The authors' rope_config: {"imag": bool, "imag_mode": "imag1" | "imag2",
// "factor": s, "yarn": bool}. Their code applies YaRN when "yarn" is true,
// otherwise linear interpolation whenever "factor" is present.
void read_rope_config(const ObjectReader& root, const std::string& source, ModelConfig& config) {
  const ObjectReader rope_config(root.object("rope_config"), source, "rope_config.");

  if (!rope_config.has("imag")) {
    fail("{}: missing key rope_config.imag: expected true (RoPE++) or false (vanilla RoPE)", source);
  }
  const bool imaginary = rope_config.boolean_or("imag", false);
  const std::string imag_mode = rope_config.string_or("imag_mode", "");
  if (!imaginary) {
    // The authors' vanilla configs still carry an imag_mode, which has no effect.
    config.variant = Variant::kVanilla;
  } else if (imag_mode == "imag1") {
    config.variant = Variant::kEH;
  } else if (imag_mode == "imag2") {
    config.variant = Variant::kEC;
  } else if (!rope_config.has("imag_mode")) {
    fail("{}: missing key rope_config.imag_mode: with imag true it must be \"imag1\" (RoPE++EH) or \"imag2\" "
         "(RoPE++EC)",
         source);
  } else {
    fail("{}: unsupported rope_config.imag_mode \"{}\": ropepp runs \"imag1\" (RoPE++EH, equal heads) and "
         "\"imag2\" (RoPE++EC, equal cache); the authors' experimental modes (imagh, imago, imagx) are not "
         "supported",
         source, imag_mode);
  }

  const bool yarn = rope_config.boolean_or("yarn", false);
  if (rope_config.has("factor")) {
    const double factor = rope_config.number_or("factor", 1.0, 0.0);
    if (factor < 1.0) {
      fail("{}: invalid rope_config.factor {}: expected a number >= 1 (the context extension ratio)", source,
           factor);
    }
    config.rope_scaling.type = yarn ? RopeScalingType::kYarnPaper : RopeScalingType::kLinear;
    config.rope_scaling.factor = factor;
    // The authors' YaRN measures its ramp against a 4096-token training context.
    config.rope_scaling.original_max_position = 4096;
  } else if (yarn) {
    fail("{}: rope_config.yarn is true but rope_config.factor is missing: add the extension factor, e.g. "
         "\"factor\": 32",
         source);
  }
}

// Hugging Face's rope_scaling: {"rope_type" (or the older "type"): "default" |
// "linear" | "yarn", "factor", "original_max_position_embeddings",
// "beta_fast", "beta_slow", "attention_factor"}.
RopeScaling read_rope_scaling(const ObjectReader& root, const std::string& source, int64_t max_position_embeddings) {
  const ObjectReader scaling_reader(root.object("rope_scaling"), source, "rope_scaling.");
  std::string rope_type;
  if (scaling_reader.has("rope_type")) {
    rope_type = scaling_reader.string_or("rope_type", "");
  } else if (scaling_reader.has("type")) {
    rope_type = scaling_reader.string_or("type", "");
  } else {
    fail("{}: missing key rope_scaling.rope_type: expected \"default\", \"linear\" or \"yarn\"", source);
  }

  RopeScaling scaling;
  if (rope_type == "default") return scaling;
  if (rope_type != "linear" && rope_type != "yarn") {
    fail("{}: unsupported rope_scaling.rope_type \"{}\": ropepp supports \"default\", \"linear\" and \"yarn\"",
         source, rope_type);
  }

  const bool has_original = scaling_reader.has("original_max_position_embeddings");
  const int64_t original =
      scaling_reader.integer_or("original_max_position_embeddings", max_position_embeddings, 1, int64_t{1} << 40);
  if (scaling_reader.has("factor")) {
    scaling.factor = scaling_reader.number_or("factor", 1.0, 0.0);
  } else if (rope_type == "yarn" && has_original) {
    // Recent transformers releases derive a missing YaRN factor from the two context lengths.
    scaling.factor = static_cast<double>(max_position_embeddings) / static_cast<double>(original);
  } else {
    fail("{}: missing key rope_scaling.factor: rope_type \"{}\" needs the extension factor", source, rope_type);
  }
  if (scaling.factor < 1.0) {
    fail("{}: invalid rope_scaling.factor {}: expected a number >= 1", source, scaling.factor);
  }

  if (rope_type == "linear") {
    scaling.type = RopeScalingType::kLinear;
    return scaling;
  }
  // NOTE: transformers releases differ in which context length sets the YaRN
  // ramp. This follows the releases that use original_max_position_embeddings
  // when the config sets it, and max_position_embeddings otherwise.
  scaling.type = RopeScalingType::kYarnHF;
  scaling.original_max_position = original;
  scaling.beta_fast = scaling_reader.number_or("beta_fast", 32.0, 0.0);
  scaling.beta_slow = scaling_reader.number_or("beta_slow", 1.0, 0.0);
  scaling.attention_factor = scaling_reader.number_or("attention_factor", 0.0, -1.0);
  if (scaling.attention_factor < 0.0) {
    fail("{}: invalid rope_scaling.attention_factor {}: expected a number >= 0", source, scaling.attention_factor);
  }
  return scaling;
}

bool same_scaling(const RopeScaling& a, const RopeScaling& b) { return a.type == b.type && a.factor == b.factor; }

std::string scaling_description(const RopeScaling& scaling) {
  switch (scaling.type) {
    case RopeScalingType::kNone: return "no scaling";
    case RopeScalingType::kLinear: return fmt::format("linear interpolation by {}", scaling.factor);
    case RopeScalingType::kYarnPaper: return fmt::format("the authors' YaRN with factor {}", scaling.factor);
    case RopeScalingType::kYarnHF: return fmt::format("Hugging Face YaRN with factor {}", scaling.factor);
  }
  return "no scaling";
}

}  // namespace

ProjectionHeads projection_heads(const ModelConfig& config) {
  const int heads = config.num_attention_heads;
  const int kv_heads = config.num_key_value_heads;
  switch (config.variant) {
    case Variant::kVanilla: return {heads, kv_heads, heads};
    case Variant::kEH: return {heads / 2, kv_heads / 2, heads};
    case Variant::kEC: return {heads, kv_heads, 2 * heads};
  }
  return {heads, kv_heads, heads};
}

RopeParams ModelConfig::rope_params() const {
  RopeParams params;
  params.head_dim = head_dim;
  params.theta = rope_theta;
  params.scaling = rope_scaling;
  return params;
}

int64_t ModelConfig::parameter_count() const {
  const ProjectionHeads heads = projection_heads(*this);
  const int64_t hidden = hidden_size;
  const int64_t d = head_dim;
  const int64_t attention =
      hidden * heads.query * d + 2 * hidden * heads.key_value * d + int64_t{heads.attention} * d * hidden;
  const int64_t mlp = 3 * hidden * static_cast<int64_t>(intermediate_size);
  const int64_t per_layer = attention + mlp + 2 * hidden;
  const int64_t embeddings = static_cast<int64_t>(vocab_size) * hidden;
  return embeddings + num_hidden_layers * per_layer + hidden + (tie_word_embeddings ? 0 : embeddings);
}

void ModelConfig::validate(const std::string& source) const {
  const auto check_range = [&](const char* key, int64_t value, int64_t minimum, int64_t maximum) {
    if (value < minimum || value > maximum) {
      fail("{}: invalid {} {}: expected an integer in [{}, {}]", source, key, value, minimum, maximum);
    }
  };
  check_range("vocab_size", vocab_size, 1, kMaxVocabulary);
  check_range("hidden_size", hidden_size, 1, kMaxWidth);
  check_range("intermediate_size", intermediate_size, 1, kMaxWidth);
  check_range("num_hidden_layers", num_hidden_layers, 1, kMaxLayers);
  check_range("num_attention_heads", num_attention_heads, 1, kMaxHeads);
  check_range("num_key_value_heads", num_key_value_heads, 1, kMaxHeads);
  check_range("head_dim", head_dim, 1, kMaxWidth);
  check_range("max_position_embeddings", max_position_embeddings, 1, int64_t{1} << 40);

  if (head_dim % 2 != 0) {
    fail("{}: invalid head_dim {}: rotary embeddings rotate pairs of components, so head_dim must be even", source,
         head_dim);
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    fail("{}: num_key_value_heads {} does not divide num_attention_heads {}: grouped-query attention shares each "
         "key/value head among a whole number of query heads",
         source, num_key_value_heads, num_attention_heads);
  }
  if (variant == Variant::kEH && (num_attention_heads % 2 != 0 || num_key_value_heads % 2 != 0)) {
    fail("{}: RoPE++EH (imag_mode \"imag1\") needs even num_attention_heads and num_key_value_heads, found {} and "
         "{}: half of the heads become imaginary heads",
         source, num_attention_heads, num_key_value_heads);
  }
  if (int64_t{num_attention_heads} * head_dim > kMaxWidth) {
    fail("{}: num_attention_heads * head_dim = {} exceeds the limit {}", source,
         int64_t{num_attention_heads} * head_dim, kMaxWidth);
  }

  if (!std::isfinite(rms_norm_eps) || rms_norm_eps <= 0.0) {
    fail("{}: invalid rms_norm_eps {}: expected a finite number > 0", source, rms_norm_eps);
  }
  if (!std::isfinite(rope_theta) || rope_theta <= 1.0) {
    fail("{}: invalid rope_theta {}: expected a finite number > 1", source, rope_theta);
  }
  if (bos_token_id < -1 || bos_token_id >= vocab_size) {
    fail("{}: invalid bos_token_id {}: expected a token id in [0, {}) or none", source, bos_token_id, vocab_size);
  }
  for (const int eos : eos_token_ids) {
    if (eos < 0 || eos >= vocab_size) {
      fail("{}: invalid eos_token_id {}: expected a token id in [0, {})", source, eos, vocab_size);
    }
  }
  if (torch_dtype != "float32" && torch_dtype != "bfloat16" && torch_dtype != "float16") {
    fail("{}: invalid torch_dtype \"{}\": expected \"float32\", \"bfloat16\" or \"float16\"", source, torch_dtype);
  }

  const RopeScaling& scaling = rope_scaling;
  if (scaling.type != RopeScalingType::kNone) {
    if (!std::isfinite(scaling.factor) || scaling.factor < 1.0) {
      fail("{}: invalid rope scaling factor {}: expected a finite number >= 1", source, scaling.factor);
    }
    if (scaling.original_max_position <= 0) {
      fail("{}: invalid original_max_position_embeddings {}: expected > 0", source, scaling.original_max_position);
    }
  }
  if (scaling.type == RopeScalingType::kYarnHF) {
    if (!(scaling.beta_fast > 0.0 && scaling.beta_slow > 0.0 && scaling.beta_fast >= scaling.beta_slow) ||
        !std::isfinite(scaling.beta_fast)) {
      fail("{}: invalid rope_scaling beta_fast {} and beta_slow {}: expected finite numbers with beta_fast >= "
           "beta_slow > 0",
           source, scaling.beta_fast, scaling.beta_slow);
    }
    if (!std::isfinite(scaling.attention_factor) || scaling.attention_factor < 0.0) {
      fail("{}: invalid rope_scaling attention_factor {}: expected a number >= 0 (0 selects 0.1 * ln(factor) + 1)",
           source, scaling.attention_factor);
    }
  }
}

ModelConfig model_config_from_json(const nlohmann::json& root, const std::string& source) {
  if (!root.is_object()) {
    fail("{}: expected a JSON object at the top level, found {}", source, json_type_name(root));
  }
  const ObjectReader reader(root, source, "");
  ModelConfig config;

  const std::string model_type = reader.string_or("model_type", "llama");
  if (model_type != "llama") {
    fail("{}: unsupported model_type \"{}\": ropepp loads Llama-architecture models (\"llama\")", source,
         model_type);
  }
  const std::string activation = reader.string_or("hidden_act", "silu");
  if (activation != "silu") {
    fail("{}: unsupported hidden_act \"{}\": the Llama MLP in ropepp is SwiGLU (\"silu\")", source, activation);
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (reader.boolean_or(key, false)) {
      fail("{}: unsupported {} true: ropepp's Llama layers have no biases", source, key);
    }
  }

  // The shape keys are required. Every other key falls back to the default of
  // transformers' LlamaConfig: vocab_size 32000, rms_norm_eps 1e-6,
  // rope_theta 10000, max_position_embeddings 2048, bos 1, eos 2, untied.
  config.hidden_size = static_cast<int>(reader.required_integer("hidden_size", 1, kMaxWidth));
  config.intermediate_size = static_cast<int>(reader.required_integer("intermediate_size", 1, kMaxWidth));
  config.num_hidden_layers = static_cast<int>(reader.required_integer("num_hidden_layers", 1, kMaxLayers));
  config.num_attention_heads = static_cast<int>(reader.required_integer("num_attention_heads", 1, kMaxHeads));
  config.num_key_value_heads =
      static_cast<int>(reader.integer_or("num_key_value_heads", config.num_attention_heads, 1, kMaxHeads));
  if (reader.has("head_dim")) {
    config.head_dim = static_cast<int>(reader.integer("head_dim", 1, kMaxWidth));
  } else {
    if (config.hidden_size % config.num_attention_heads != 0) {
      fail("{}: hidden_size {} is not divisible by num_attention_heads {} and head_dim is not set: add \"head_dim\" "
           "or fix the head count",
           source, config.hidden_size, config.num_attention_heads);
    }
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  config.vocab_size = static_cast<int>(reader.integer_or("vocab_size", 32000, 1, kMaxVocabulary));
  config.rms_norm_eps = reader.number_or("rms_norm_eps", 1e-6, 0.0);
  config.rope_theta = reader.number_or("rope_theta", 10000.0, 1.0);
  config.max_position_embeddings = reader.integer_or("max_position_embeddings", 2048, 1, int64_t{1} << 40);
  config.tie_word_embeddings = reader.boolean_or("tie_word_embeddings", false);
  config.torch_dtype = reader.string_or("torch_dtype", "float32");

  // bos_token_id null means the model has no BOS token (stored as -1).
  if (!root.contains("bos_token_id")) {
    config.bos_token_id = 1;
  } else if (root.at("bos_token_id").is_null()) {
    config.bos_token_id = -1;
  } else {
    config.bos_token_id = static_cast<int>(reader.integer("bos_token_id", 0, kMaxVocabulary));
  }
  config.eos_token_ids.clear();
  if (!root.contains("eos_token_id")) {
    config.eos_token_ids = {2};
  } else if (root.at("eos_token_id").is_array()) {
    const json& list = root.at("eos_token_id");
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_number_integer() || list[i].get<int64_t>() < 0 || list[i].get<int64_t>() >= kMaxVocabulary) {
        fail("{}: invalid eos_token_id[{}]: expected a token id, found {}", source, i, show(list[i]));
      }
      config.eos_token_ids.push_back(static_cast<int>(list[i].get<int64_t>()));
    }
  } else if (!root.at("eos_token_id").is_null()) {
    config.eos_token_ids.push_back(static_cast<int>(reader.integer("eos_token_id", 0, kMaxVocabulary)));
  }

  if (reader.has("rope_config")) read_rope_config(reader, source, config);
  if (reader.has("rope_scaling")) {
    const RopeScaling standard = read_rope_scaling(reader, source, config.max_position_embeddings);
    if (config.rope_scaling.type == RopeScalingType::kNone) {
      config.rope_scaling = standard;
    } else if (standard.type != RopeScalingType::kNone && !same_scaling(standard, config.rope_scaling)) {
      // The authors' code reads only rope_config and Hugging Face's only
      // rope_scaling, so a config where they differ runs differently in the two.
      fail("{}: rope_config asks for {} but rope_scaling asks for {}: remove one of them or make them agree",
           source, scaling_description(config.rope_scaling), scaling_description(standard));
    }
  }

  config.validate(source);
  return config;
}

nlohmann::ordered_json model_config_to_json(const ModelConfig& config) {
  nlohmann::ordered_json out;
  out["architectures"] = {"LlamaForCausalLM"};
  out["model_type"] = "llama";
  out["hidden_size"] = config.hidden_size;
  out["intermediate_size"] = config.intermediate_size;
  out["num_hidden_layers"] = config.num_hidden_layers;
  out["num_attention_heads"] = config.num_attention_heads;
  out["num_key_value_heads"] = config.num_key_value_heads;
  out["head_dim"] = config.head_dim;
  out["hidden_act"] = "silu";
  out["attention_bias"] = false;
  out["mlp_bias"] = false;
  out["rms_norm_eps"] = config.rms_norm_eps;
  out["rope_theta"] = config.rope_theta;
  out["max_position_embeddings"] = config.max_position_embeddings;
  out["vocab_size"] = config.vocab_size;
  out["tie_word_embeddings"] = config.tie_word_embeddings;
  if (config.bos_token_id >= 0) {
    out["bos_token_id"] = config.bos_token_id;
  } else {
    out["bos_token_id"] = nullptr;
  }
  if (config.eos_token_ids.size() == 1) {
    out["eos_token_id"] = config.eos_token_ids.front();
  } else if (config.eos_token_ids.empty()) {
    out["eos_token_id"] = nullptr;
  } else {
    out["eos_token_id"] = config.eos_token_ids;
  }
  out["torch_dtype"] = config.torch_dtype;

  // The authors' code indexes rope_config["imag"] and rope_config["imag_mode"]
  // unconditionally, so both are always written. A vanilla model carries
  // imag_mode "imag1", as the authors' own vanilla configs do.
  nlohmann::ordered_json rope_config;
  rope_config["imag"] = config.variant != Variant::kVanilla;
  rope_config["imag_mode"] = config.variant == Variant::kEC ? "imag2" : "imag1";
  const RopeScaling& scaling = config.rope_scaling;
  if (scaling.type == RopeScalingType::kLinear || scaling.type == RopeScalingType::kYarnPaper) {
    rope_config["factor"] = scaling.factor;
    rope_config["yarn"] = scaling.type == RopeScalingType::kYarnPaper;
  }
  out["rope_config"] = rope_config;

  // Hugging Face's LlamaConfig has no form for the authors' YaRN, so only
  // linear and Hugging Face YaRN appear in rope_scaling. The authors' code
  // ignores rope_scaling and would run a yarn-hf model without scaling.
  if (scaling.type == RopeScalingType::kLinear) {
    out["rope_scaling"] = {{"rope_type", "linear"}, {"factor", scaling.factor}};
  } else if (scaling.type == RopeScalingType::kYarnHF) {
    nlohmann::ordered_json yarn;
    yarn["rope_type"] = "yarn";
    yarn["factor"] = scaling.factor;
    yarn["original_max_position_embeddings"] = scaling.original_max_position;
    yarn["beta_fast"] = scaling.beta_fast;
    yarn["beta_slow"] = scaling.beta_slow;
    if (scaling.attention_factor > 0.0) yarn["attention_factor"] = scaling.attention_factor;
    out["rope_scaling"] = yarn;
  } else {
    out["rope_scaling"] = nullptr;
  }
  return out;
}

ModelConfig read_model_config(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path file = fs::is_directory(path, error) ? path / "config.json" : path;
  const bool found = fs::exists(file, error);
  if (error) fail("{}: cannot access the file: {}", file.string(), error.message());
  if (!found) {
    fail("{}: config.json not found: a checkpoint folder needs the model's config.json", file.string());
  }
  const json root = read_json_file(file);
  return model_config_from_json(root, file.string());
}

void write_model_config(const std::filesystem::path& file, const ModelConfig& config) {
  config.validate(file.string());
  write_file_atomic(file, model_config_to_json(config).dump(2) + "\n");
}

}  // namespace ropepp
