// Training checkpoints: a folder per saved step, written under a temporary
// name and renamed, so a crash or kill -9 at any moment leaves every earlier
// checkpoint intact.
//
//   OUT/step-00001000/config.json, model.safetensors   Hugging Face weights (f32
//                                                      master weights, loadable
//                                                      by `ropepp generate`)
//   OUT/step-00001000/optimizer.safetensors            AdamW moments: exp_avg.NAME,
//                                                      exp_avg_sq.NAME (f32)
//   OUT/step-00001000/trainer_state.json               step, data position, the
//                                                      settings a resume must share
// trainer_state.json is written last; a folder without it is not a checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "train/optimizer.h"
#include "train/train_model.h"

namespace ropepp::train {

// Everything besides weights and moments that a bit-identical resume needs.
// The data order is a pure function of (seed, sequences_consumed), so no
// generator state is stored.
struct TrainerState {
  int64_t step = 0;                // optimizer steps done
  int64_t sequences_consumed = 0;  // training sequences read so far
  int64_t tokens_seen = 0;
  uint64_t seed = 0;
  // Settings that must match on resume (data fingerprint, sequence length,
  // batch shape, schedule...), compared key by key.
  nlohmann::ordered_json run_settings;
};

// Test hook: called with a stage name ("weights", "optimizer", "state",
// "rename") while a checkpoint is written; a throwing hook simulates a crash.
using CheckpointHook = std::function<void(const std::string& stage)>;
void set_checkpoint_hook(CheckpointHook hook);

// Folder name of a step: step-00001000.
std::string checkpoint_folder_name(int64_t step);

// Writes OUT/step-N atomically, then removes all but the newest keep_last
// checkpoints (keep_last <= 0 keeps all). Returns the folder written.
std::filesystem::path save_training_checkpoint(const std::filesystem::path& out_dir, const TrainModel<float>& model,
                                               const AdamW& optimizer, const TrainerState& state, int keep_last);

// The newest complete checkpoint folder under out_dir, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& out_dir);

// Reads a training checkpoint into model and optimizer (shapes must match) and
// returns its state. Throws ropepp::Error naming the file and tensor for a
// missing, damaged or mismatched checkpoint.
TrainerState load_training_checkpoint(const std::filesystem::path& folder, TrainModel<float>& model,
                                      AdamW& optimizer);

// Copies the weights of a Hugging Face checkpoint into model (same shapes;
// rope settings may differ), for context extension and fine-tuning.
void load_weights(const std::filesystem::path& folder, TrainModel<float>& model);

// Throws ropepp::Error listing every setting of `saved` that differs in `current`.
void check_resume_settings(const nlohmann::ordered_json& saved, const nlohmann::ordered_json& current,
                           const std::filesystem::path& folder);

}  // namespace ropepp::train
