// `ropepp init`: writes a randomly initialised model checkpoint for a preset.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "model/presets.h"
#include "model/weights.h"

namespace ropepp::cli {
namespace {

struct InitOptions {
  std::string preset;
  std::string variant = "rope";
  std::string out;
  std::string dtype = "f32";
  uint64_t seed = 0;
  int vocab_size = 0;
  double rope_theta = 0.0;
  std::string rope_scaling = "none";
  double rope_factor = 1.0;
  int64_t max_position = 0;
  bool tie_embeddings = false;
  double init_std = 0.02;
};

int run_init(const InitOptions& options) {
  ModelConfig config = model_preset(options.preset, parse_variant(options.variant));
  if (options.vocab_size > 0) config.vocab_size = options.vocab_size;
  if (config.bos_token_id >= config.vocab_size) config.bos_token_id = -1;
  std::erase_if(config.eos_token_ids, [&](int id) { return id >= config.vocab_size; });
  if (options.rope_theta > 0.0) config.rope_theta = options.rope_theta;
  if (options.max_position > 0) config.max_position_embeddings = options.max_position;
  config.tie_word_embeddings = options.tie_embeddings;
  config.rope_scaling.type = parse_rope_scaling_type(options.rope_scaling);
  if (config.rope_scaling.type != RopeScalingType::kNone) {
    ROPEPP_CHECK(options.rope_factor >= 1.0, "invalid --rope-factor {}: expected a number >= 1",
                 options.rope_factor);
    config.rope_scaling.factor = options.rope_factor;
    // Both YaRN ramps are measured against the context the model was trained on.
    config.rope_scaling.original_max_position = config.max_position_embeddings;
  }
  config.validate("ropepp init");

  const DType dtype = options.dtype == "bf16" ? DType::kBF16 : DType::kF32;
  spdlog::info("initialising {} {} ({} parameters, seed {})", options.preset, variant_name(config.variant),
               config.parameter_count(), options.seed);
  const Weights weights = Weights::random(config, options.seed, options.init_std);
  weights.save(options.out, dtype);
  spdlog::info("wrote {} ({})", options.out, dtype_name(dtype));
  return 0;
}

}  // namespace

void register_init(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<InitOptions>();
  CLI::App* command = app.add_subcommand("init", "Write a randomly initialised model checkpoint for a preset");
  command->add_option("--preset", options->preset, "Model shape: " + model_preset_names())->required();
  command->add_option("--variant", options->variant, "Attention: rope, eh (RoPE++EH) or ec (RoPE++EC)")
      ->capture_default_str();
  command->add_option("--out", options->out, "Checkpoint folder to write (replaced atomically)")->required();
  command->add_option("--dtype", options->dtype, "Stored weight type")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  command->add_option("--seed", options->seed, "Random seed of the initialisation")->capture_default_str();
  command->add_option("--vocab-size", options->vocab_size,
                      "Vocabulary size (0: the preset's, 320 for small presets, 128256 for the paper's)")
      ->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  command->add_option("--rope-theta", options->rope_theta, "RoPE base rope_theta (0: the preset's, 10000)")
      ->capture_default_str();
  command->add_option("--rope-scaling", options->rope_scaling,
                      "Position scaling: none, linear, yarn-paper (the RoPE++ authors') or yarn-hf")
      ->capture_default_str();
  command->add_option("--rope-factor", options->rope_factor, "Scaling factor for linear and YaRN scaling")
      ->capture_default_str();
  command->add_option("--max-position", options->max_position,
                      "max_position_embeddings in tokens (0: the preset's, 4096)")
      ->capture_default_str();
  command->add_flag("--tie-embeddings", options->tie_embeddings, "Share the embedding matrix with the LM head");
  command->add_option("--init-std", options->init_std,
                      "Standard deviation of the normal initialisation of embeddings and linear weights")
      ->capture_default_str();
  commands.push_back(Command{command, [options] { return run_init(*options); }});
}

}  // namespace ropepp::cli
