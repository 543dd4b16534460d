// `ropepp train`: train a RoPE / RoPE++ model from scratch, resume a run, or
// continue from a checkpoint with a longer context and new rope settings.
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "train/trainer.h"

namespace ropepp::cli {
namespace {

// Settings from flags, applied over those of the --config file: only the flags
// given on the command line override.
struct TrainFlags {
  std::string config_path;
  std::string summary_json;
  train::TrainConfig values;
  std::vector<std::function<void(train::TrainConfig&)>> overrides;
};

template <typename T>
void add_setting(CLI::App* app, TrainFlags& flags, const std::string& name, T train::TrainConfig::*field,
                 const std::string& description) {
  flags.values.*field = train::TrainConfig{}.*field;
  CLI::Option* option = app->add_option(name, flags.values.*field, description)->capture_default_str();
  flags.overrides.push_back([option, field, &flags](train::TrainConfig& config) {
    if (option->count() > 0) config.*field = flags.values.*field;
  });
}

void add_switch(CLI::App* app, TrainFlags& flags, const std::string& name, bool train::TrainConfig::*field,
                const std::string& description) {
  CLI::Option* option = app->add_flag(name, flags.values.*field, description);
  flags.overrides.push_back([option, field, &flags](train::TrainConfig& config) {
    if (option->count() > 0) config.*field = flags.values.*field;
  });
}

int run_train(const TrainFlags& flags) {
  train::TrainConfig config;
  if (!flags.config_path.empty()) {
    std::ifstream in(flags.config_path);
    ROPEPP_CHECK(in.good(), "cannot open training config {}", flags.config_path);
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& error) {
      fail("{}: invalid JSON: {}", flags.config_path, error.what());
    }
    train::apply_json(json, config, flags.config_path);
  }
  for (const auto& apply : flags.overrides) apply(config);

  const train::TrainSummary summary = train::run(config);
  if (!flags.summary_json.empty()) {
    nlohmann::ordered_json json;
    json["steps"] = summary.steps;
    json["tokens"] = summary.tokens;
    json["final_loss"] = summary.final_loss;
    json["final_val_loss"] = summary.final_val_loss;
    json["tokens_per_second"] = summary.tokens_per_second;
    json["mfu"] = summary.mfu;
    json["seconds"] = summary.seconds;
    json["last_checkpoint"] = summary.last_checkpoint;
    json["metrics_file"] = summary.metrics_file;
    json["config"] = train::to_json(config);
    std::ofstream(flags.summary_json) << json.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

void register_train(CLI::App& app, Commands& commands) {
  CLI::App* command = app.add_subcommand(
      "train",
      "Train a RoPE / RoPE++ language model on text files, resume a run, or extend a model's context.\n"
      "Settings come from --config (a JSON object whose keys are the option names with underscores, e.g.\n"
      "{\"seq_len\": 4096, \"data\": [\"data/corpus\"]}); flags given on the command line override them.");
  auto flags = std::make_shared<TrainFlags>();
  TrainFlags& f = *flags;
  using C = train::TrainConfig;
  command->add_option("--config", f.config_path, "JSON file of training settings (flags override it)");
  command->add_option("--summary-json", f.summary_json, "Write the final summary as JSON to this file");

  add_setting(command, f, "--model", &C::model,
              "Model size: a preset (tiny, small, 56m, 376m, 776m, 1.5b) or a config.json path");
  add_setting(command, f, "--variant", &C::variant, "Attention: rope, eh (RoPE++ equal heads) or ec (equal cache)");
  add_setting(command, f, "--vocab-size", &C::vocab_size,
              "Embedding rows; 0 = the tokenizer's vocabulary rounded up to a multiple of 64");
  add_setting(command, f, "--rope-theta", &C::rope_theta, "RoPE base (rope_theta); larger extends the context");
  add_setting(command, f, "--rope-scaling", &C::rope_scaling, "Position scaling: none, linear, yarn-paper or yarn-hf");
  add_setting(command, f, "--rope-factor", &C::rope_factor, "Scaling factor for linear / YaRN scaling");
  add_setting(command, f, "--rope-original-context", &C::rope_original_context,
              "YaRN: training context of the model being extended, in tokens");
  add_setting(command, f, "--data", &C::data, "Text files, JSON-lines files (.jsonl) or folders (repeatable)");
  add_setting(command, f, "--text-field", &C::text_field, "Field holding the text in JSON-lines files");
  add_setting(command, f, "--tokenizer", &C::tokenizer, "\"byte\", or a tokenizer.json file or folder");
  add_setting(command, f, "--cache-dir", &C::cache_dir, "Token cache folder (empty: OUT/token_cache)");
  add_setting(command, f, "--seq-len", &C::seq_len, "Tokens per training sequence");
  add_setting(command, f, "--min-document-tokens", &C::min_document_tokens,
              "Skip documents shorter than this many tokens");
  add_setting(command, f, "--validation-fraction", &C::validation_fraction,
              "Share of documents held out for validation (0 to 1)");
  add_setting(command, f, "--batch-size", &C::batch_size, "Sequences per micro-batch");
  add_setting(command, f, "--grad-accum", &C::grad_accum, "Micro-batches per optimizer step");
  add_setting(command, f, "--steps", &C::steps, "Optimizer steps in total (a resumed run continues up to this)");
  add_setting(command, f, "--schedule", &C::schedule, "Learning-rate schedule: constant, wsd or cosine (all with warm-up)");
  add_setting(command, f, "--lr", &C::lr, "Peak learning rate");
  add_setting(command, f, "--min-lr", &C::min_lr, "Learning rate at the end of a cosine decay");
  add_setting(command, f, "--warmup-steps", &C::warmup_steps, "Steps of linear warm-up");
  add_setting(command, f, "--decay-steps", &C::decay_steps, "wsd: steps of the final cosine decay (0 = 10% of steps)");
  add_setting(command, f, "--weight-decay", &C::weight_decay, "AdamW weight decay (not applied to norm weights)");
  add_setting(command, f, "--beta1", &C::beta1, "AdamW beta1");
  add_setting(command, f, "--beta2", &C::beta2, "AdamW beta2");
  add_setting(command, f, "--adam-eps", &C::adam_eps, "AdamW epsilon");
  add_setting(command, f, "--grad-clip", &C::grad_clip, "Maximum global gradient norm (0 = no clipping)");
  add_setting(command, f, "--precision", &C::precision, "Matrix products: f32, or bf16 (needs AVX512_BF16)");
  add_setting(command, f, "--seed", &C::seed, "Seed of the initialisation, data order and validation split");
  add_setting(command, f, "--out", &C::out_dir, "Output folder: checkpoints step-N/, metrics.jsonl");
  add_setting(command, f, "--checkpoint-every", &C::checkpoint_every, "Save a checkpoint every this many steps");
  add_setting(command, f, "--keep-last", &C::keep_last, "Checkpoints kept (0 = all)");
  add_setting(command, f, "--eval-every", &C::eval_every, "Validation loss every this many steps (0 = never)");
  add_setting(command, f, "--eval-batches", &C::eval_batches, "Batches per validation");
  add_switch(command, f, "--resume", &C::resume, "Continue the run in --out from its newest checkpoint");
  add_setting(command, f, "--stop-after-steps", &C::stop_after_steps,
              "End this invocation after this many steps, with a checkpoint (0 = run to --steps); --resume continues");
  add_setting(command, f, "--init-from", &C::init_from,
              "Start from this checkpoint's weights with a new optimizer (context extension, fine-tuning)");
  add_switch(command, f, "--quiet", &C::quiet, "No configuration table or summary");

  commands.push_back({command, [flags] { return run_train(*flags); }});
}

}  // namespace ropepp::cli
