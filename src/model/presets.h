// Named model shapes: the 376M, 776M and 1.5B Llama models of the RoPE++ paper
// (Liu et al. 2025, Llama-3 vocabulary, untied embeddings) and smaller ones for
// tests, quick runs and benchmarks.
#pragma once

#include <string>
#include <vector>

#include "io/model_config.h"

namespace ropepp {

struct ModelPreset {
  std::string name;
  std::string description;
  ModelConfig config;  // vanilla RoPE; apply a variant with model_preset()
};

// Every preset, smallest first:
//   tiny   hidden 64,   2 layers, H 4,  G 2, head_dim 16,  intermediate 128   (tests)
//   small  hidden 384,  6 layers, H 6,  G 2, head_dim 64,  intermediate 1024  (~10M parameters)
//   56m    hidden 768,  8 layers, H 12, G 4, head_dim 64,  intermediate 2304  (~56M, training benchmark)
//   376m, 776m, 1.5b: the RoPE++ paper's shapes with the Llama-3 vocabulary (128256).
// The small presets use a 320-token vocabulary, which holds the byte
// tokenizer's 259 ids (BOS 256, EOS 257) rounded up to a multiple of 64.
const std::vector<ModelPreset>& model_presets();

// The preset's config with the given variant. Throws ropepp::Error listing
// the preset names when `name` is unknown.
ModelConfig model_preset(const std::string& name, Variant variant = Variant::kVanilla);

// "tiny, small, 56m, 376m, 776m, 1.5b", for help texts and errors.
std::string model_preset_names();

}  // namespace ropepp
