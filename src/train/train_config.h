// Settings of a training run, read from a JSON file and/or command-line flags
// (flags override the file). Keys of the JSON object are the field names below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/model_config.h"
#include "train/optimizer.h"

namespace ropepp::train {

struct TrainConfig {
  // Model: a preset name (see model_presets()) or a config.json path.
  std::string model = "tiny";
  std::string variant = "rope";  // rope, eh or ec
  int vocab_size = 0;            // 0: the tokenizer's vocabulary rounded up to a multiple of 64
  // Rope settings replace those of a config.json model too, which is how a
  // context extension (init_from) sets its new base and scaling.
  double rope_theta = 10000.0;
  std::string rope_scaling = "none";  // none, linear, yarn-paper or yarn-hf
  double rope_factor = 1.0;
  int64_t rope_original_context = 4096;  // YaRN: the context the model was trained at

  // Data.
  std::vector<std::string> data;  // text files, JSON-lines files or folders
  std::string text_field = "text";
  std::string tokenizer = "byte";  // "byte", or a tokenizer.json file or folder
  std::string cache_dir;           // token cache folder; empty: OUT/token_cache
  int64_t seq_len = 512;           // tokens per sequence
  int64_t min_document_tokens = 512;
  double validation_fraction = 0.01;

  // Optimisation.
  int64_t batch_size = 8;  // sequences per micro-batch
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  int64_t steps = 1000;
  std::string schedule = "constant";  // constant, wsd or cosine
  double lr = 5e-4;
  double min_lr = 0.0;
  int64_t warmup_steps = 100;
  int64_t decay_steps = 0;  // wsd: length of the final cosine decay; 0 means 10% of steps
  double weight_decay = 0.1;
  double beta1 = 0.95;
  double beta2 = 0.99;
  double adam_eps = 1e-8;
  double grad_clip = 1.0;  // max global gradient norm; 0 disables clipping
  std::string precision = "f32";  // f32 or bf16 matrix products
  uint64_t seed = 0;

  // Output.
  std::string out_dir = "runs/train";
  int64_t checkpoint_every = 500;  // steps; the final step is always saved
  int keep_last = 3;
  int64_t eval_every = 100;  // steps; 0 disables validation
  int64_t eval_batches = 4;
  bool resume = false;       // continue from the newest checkpoint in out_dir
  int64_t stop_after_steps = 0;  // end this invocation (with a checkpoint) after this many steps; 0: run to `steps`
  std::string init_from;     // start from these weights (new optimizer), e.g. for context extension
  bool quiet = false;        // no configuration table or summary on stderr

  // Throws ropepp::Error naming the first invalid field.
  void validate() const;
};

// Reads the keys of a JSON object into config; unknown keys are an error.
void apply_json(const nlohmann::json& json, TrainConfig& config, const std::string& source);
nlohmann::ordered_json to_json(const TrainConfig& config);

// Named model sizes: "tiny", "small", "56m", "376m", "776m", "1.5b" (the last
// three are the RoPE++ paper's sizes). Vocabulary and variant are filled in later.
std::vector<std::string> model_preset_names();

// The model config of a run: preset or file, then variant, vocabulary and
// rope settings from config. Throws ropepp::Error for an unknown preset.
ModelConfig resolve_model_config(const TrainConfig& config, int tokenizer_vocab_size);

}  // namespace ropepp::train
