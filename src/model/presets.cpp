#include "model/presets.h"

#include "core/error.h"

namespace ropepp {
namespace {

ModelConfig shape(int hidden, int layers, int heads, int kv_heads, int head_dim, int intermediate, int vocab) {
  ModelConfig config;
  config.hidden_size = hidden;
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  config.num_key_value_heads = kv_heads;
  config.head_dim = head_dim;
  config.intermediate_size = intermediate;
  config.vocab_size = vocab;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.max_position_embeddings = 4096;
  config.tie_word_embeddings = false;
  if (vocab == 128256) {
    // Llama-3 tokenizer: <|begin_of_text|> and <|end_of_text|>.
    config.bos_token_id = 128000;
    config.eos_token_ids = {128001};
    config.torch_dtype = "bfloat16";
  } else {
    // The byte tokenizer's specials.
    config.bos_token_id = 256;
    config.eos_token_ids = {257};
    config.torch_dtype = "float32";
  }
  return config;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = {
      {"tiny", "2 layers, hidden 64: for tests", shape(64, 2, 4, 2, 16, 128, 320)},
      {"small", "6 layers, hidden 384, ~10M parameters: quick runs", shape(384, 6, 6, 2, 64, 1024, 320)},
      {"56m", "8 layers, hidden 768, ~56M parameters: training benchmark", shape(768, 8, 12, 4, 64, 2304, 320)},
      {"376m", "the paper's 376M model", shape(1024, 8, 8, 4, 128, 3584, 128256)},
      {"776m", "the paper's 776M model", shape(1536, 12, 12, 6, 128, 5376, 128256)},
      {"1.5b", "the paper's 1.5B model", shape(2048, 16, 16, 4, 128, 7168, 128256)},
  };
  return presets;
}

std::string model_preset_names() {
  std::string names;
  for (const ModelPreset& preset : model_presets()) {
    if (!names.empty()) names += ", ";
    names += preset.name;
  }
  return names;
}

ModelConfig model_preset(const std::string& name, Variant variant) {
  for (const ModelPreset& preset : model_presets()) {
    if (preset.name != name) continue;
    ModelConfig config = preset.config;
    config.variant = variant;
    config.validate("preset " + name);
    return config;
  }
  fail("unknown model preset '{}': expected one of {}", name, model_preset_names());
}

}  // namespace ropepp
