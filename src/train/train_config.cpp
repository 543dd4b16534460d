#include "train/train_config.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace ropepp::train {
namespace {

struct Preset {
  const char* name;
  int hidden, layers, heads, kv_heads, intermediate;
};

// hidden, layers, attention heads, key/value heads, MLP width.
constexpr Preset kPresets[] = {
    {"tiny", 64, 2, 4, 2, 176},
    {"small", 256, 4, 8, 4, 688},
    {"56m", 768, 8, 12, 12, 2048},  // ~56M parameters without embeddings
    {"376m", 1024, 8, 8, 4, 3584},
    {"776m", 1536, 12, 12, 6, 5376},
    {"1.5b", 2048, 16, 16, 4, 7168},
};

template <typename T>
void read_key(const nlohmann::json& json, const char* key, T& value, const std::string& source) {
  if (!json.contains(key)) return;
  try {
    value = json.at(key).get<T>();
  } catch (const nlohmann::json::exception& error) {
    fail("{}: invalid value {} for \"{}\": {}", source, json.at(key).dump(), key, error.what());
  }
}

}  // namespace

#define ROPEPP_TRAIN_CONFIG_FIELDS(X)                                                                              \
  X(model) X(variant) X(vocab_size) X(rope_theta) X(rope_scaling) X(rope_factor) X(rope_original_context) X(data) \
  X(text_field) X(tokenizer) X(cache_dir) X(seq_len) X(min_document_tokens) X(validation_fraction) X(batch_size)  \
  X(grad_accum) X(steps) X(schedule) X(lr) X(min_lr) X(warmup_steps) X(decay_steps) X(weight_decay) X(beta1)      \
  X(beta2) X(adam_eps) X(grad_clip) X(precision) X(seed) X(out_dir) X(checkpoint_every) X(keep_last)             \
  X(eval_every) X(eval_batches) X(resume) X(stop_after_steps) X(init_from) X(quiet)

void apply_json(const nlohmann::json& json, TrainConfig& config, const std::string& source) {
  ROPEPP_CHECK(json.is_object(), "{}: expected a JSON object of training settings", source);
  const std::vector<std::string> known = {
#define ROPEPP_NAME(field) #field,
      ROPEPP_TRAIN_CONFIG_FIELDS(ROPEPP_NAME)
#undef ROPEPP_NAME
  };
  for (const auto& [key, value] : json.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      fail("{}: unknown setting \"{}\" (see `ropepp train --help` for the names)", source, key);
    }
  }
#define ROPEPP_READ(field) read_key(json, #field, config.field, source);
  ROPEPP_TRAIN_CONFIG_FIELDS(ROPEPP_READ)
#undef ROPEPP_READ
}

nlohmann::ordered_json to_json(const TrainConfig& config) {
  nlohmann::ordered_json json;
#define ROPEPP_WRITE(field) json[#field] = config.field;
  ROPEPP_TRAIN_CONFIG_FIELDS(ROPEPP_WRITE)
#undef ROPEPP_WRITE
  return json;
}

void TrainConfig::validate() const {
  ROPEPP_CHECK(!data.empty(), "no training data: set \"data\" (or --data) to text files, JSON-lines files or folders");
  ROPEPP_CHECK(seq_len >= 2, "invalid seq_len {}: expected >= 2 tokens", seq_len);
  ROPEPP_CHECK(batch_size >= 1, "invalid batch_size {}: expected >= 1 sequence", batch_size);
  ROPEPP_CHECK(grad_accum >= 1, "invalid grad_accum {}: expected >= 1 micro-batch", grad_accum);
  ROPEPP_CHECK(steps >= 1, "invalid steps {}: expected >= 1", steps);
  ROPEPP_CHECK(grad_clip >= 0, "invalid grad_clip {}: expected >= 0 (0 disables clipping)", grad_clip);
  ROPEPP_CHECK(checkpoint_every >= 1, "invalid checkpoint_every {}: expected >= 1 step", checkpoint_every);
  ROPEPP_CHECK(eval_every >= 0, "invalid eval_every {}: expected >= 0 (0 disables validation)", eval_every);
  ROPEPP_CHECK(eval_batches >= 1, "invalid eval_batches {}: expected >= 1", eval_batches);
  ROPEPP_CHECK(stop_after_steps >= 0, "invalid stop_after_steps {}: expected >= 0 (0 runs to the end)",
               stop_after_steps);
  ROPEPP_CHECK(keep_last >= 0, "invalid keep_last {}: expected >= 0 (0 keeps all)", keep_last);
  ROPEPP_CHECK(precision == "f32" || precision == "bf16", "invalid precision '{}': expected f32 or bf16", precision);
  ROPEPP_CHECK(!(resume && !init_from.empty()),
               "resume and init_from exclude each other: resume continues a run, init_from starts a new one");
  parse_schedule_type(schedule);
  parse_variant(variant);
  parse_rope_scaling_type(rope_scaling);
}

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (const Preset& preset : kPresets) names.push_back(preset.name);
  return names;
}

ModelConfig resolve_model_config(const TrainConfig& config, int tokenizer_vocab_size) {
  ModelConfig model;
  bool found = false;
  for (const Preset& preset : kPresets) {
    if (config.model != preset.name) continue;
    model.hidden_size = preset.hidden;
    model.num_hidden_layers = preset.layers;
    model.num_attention_heads = preset.heads;
    model.num_key_value_heads = preset.kv_heads;
    model.intermediate_size = preset.intermediate;
    model.head_dim = preset.hidden / preset.heads;
    found = true;
  }
  if (!found) {
    ROPEPP_CHECK(std::filesystem::exists(config.model), "unknown model '{}': expected a preset ({}) or a config.json path",
                 config.model, fmt::join(model_preset_names(), ", "));
    model = read_model_config(config.model);
  }
  model.variant = parse_variant(config.variant);
  if (config.vocab_size > 0) {
    model.vocab_size = config.vocab_size;
  } else if (!found) {
    // A config file keeps its own vocabulary.
  } else {
    model.vocab_size = (tokenizer_vocab_size + 63) / 64 * 64;
  }
  ROPEPP_CHECK(model.vocab_size >= tokenizer_vocab_size,
               "vocab_size {} is smaller than the tokenizer's {} ids: raise vocab_size", model.vocab_size,
               tokenizer_vocab_size);
  model.rope_theta = config.rope_theta;
  model.rope_scaling.type = parse_rope_scaling_type(config.rope_scaling);
  model.rope_scaling.factor = config.rope_factor;
  model.rope_scaling.original_max_position = config.rope_original_context;
  model.max_position_embeddings = config.seq_len;
  model.torch_dtype = "float32";
  return model;
}

}  // namespace ropepp::train
