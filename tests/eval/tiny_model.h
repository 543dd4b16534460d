// Tiny random models for the evaluation tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace ropepp::eval::testing_support {

inline ModelConfig tiny_config(Variant variant, int vocab_size = 259) {
  ModelConfig config;
  config.vocab_size = vocab_size;
  config.hidden_size = 32;
  config.intermediate_size = 64;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 8;
  config.max_position_embeddings = 64;
  config.bos_token_id = 256;
  config.eos_token_ids = {257};
  config.torch_dtype = "float32";
  config.variant = variant;
  return config;
}

// Random weights scaled up from Hugging Face's 0.02 so that attention is far
// from uniform and the logits depend visibly on the input.
inline Model tiny_model(Variant variant, uint64_t seed = 1) {
  return Model(Weights::random(tiny_config(variant), seed, 0.3));
}

// A deterministic pseudo-text of byte tokens (printable ASCII).
inline std::vector<int32_t> pseudo_text(int64_t n, uint64_t seed = 5) {
  std::vector<int32_t> tokens(n);
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& token : tokens) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    token = 32 + static_cast<int32_t>((state >> 33) % 95);
  }
  return tokens;
}

}  // namespace ropepp::eval::testing_support
