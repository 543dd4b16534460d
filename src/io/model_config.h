// The model configuration: a Hugging Face Llama config.json plus the RoPE++
// authors' `rope_config` object.
//
// rope_config = {"imag": bool, "imag_mode": "imag1" | "imag2", "factor": s, "yarn": bool}
//   imag false          -> vanilla RoPE (imag_mode is then ignored)
//   imag_mode "imag1"   -> RoPE++EH;  "imag2" -> RoPE++EC
//   "yarn": true        -> the authors' YaRN with factor s (original context 4096)
//   "factor" alone      -> linear position interpolation by s
// A config without rope_config is vanilla RoPE; Hugging Face's standard
// `rope_scaling` ({"rope_type": "linear" | "yarn", "factor": ...}) is read too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/attention.h"
#include "kernels/rope.h"

namespace ropepp {

struct ModelConfig {
  int vocab_size = 128256;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;  // H: attention heads of vanilla RoPE (EH keeps H, EC doubles it)
  int num_key_value_heads = 0;  // G
  int head_dim = 0;             // 0 in a file means hidden_size / num_attention_heads
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;
  int bos_token_id = 128000;  // -1: no BOS token (null in config.json)
  std::vector<int> eos_token_ids = {128001};
  std::string torch_dtype = "bfloat16";

  Variant variant = Variant::kVanilla;
  RopeScaling rope_scaling;  // none, linear, yarn-paper or yarn-hf

  HeadLayout head_layout() const { return HeadLayout::from_config(variant, num_attention_heads, num_key_value_heads, head_dim); }
  RopeParams rope_params() const;

  // Parameters of the whole model (embeddings and LM head included).
  int64_t parameter_count() const;

  // Throws ropepp::Error naming `source` and the field when a value is invalid.
  void validate(const std::string& source = "config") const;
};

// Head counts of one attention layer for the config's variant: heads produced
// by q_proj, by k_proj/v_proj, and attention heads (o_proj reads
// attention * head_dim values). Vanilla (H, G, H), EH (H/2, G/2, H), EC (H, G, 2H).
struct ProjectionHeads {
  int query = 0;
  int key_value = 0;
  int attention = 0;
};
ProjectionHeads projection_heads(const ModelConfig& config);

// Parses a config object. Keys missing from the object take the defaults of
// transformers' LlamaConfig, not the member defaults above; the shape keys
// (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) are
// required. `source` (usually the file path) is named in errors.
ModelConfig model_config_from_json(const nlohmann::json& json, const std::string& source);

// The config.json object ropepp writes: the standard Llama keys plus
// rope_config, so the authors' code loads it with the same settings.
nlohmann::ordered_json model_config_to_json(const ModelConfig& config);

// Reads and validates DIR/config.json (or the file itself when given one).
ModelConfig read_model_config(const std::filesystem::path& path);

// Writes config.json atomically.
void write_model_config(const std::filesystem::path& file, const ModelConfig& config);

}  // namespace ropepp
