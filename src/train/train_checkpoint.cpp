#include "train/train_checkpoint.h"

#include <algorithm>
#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace ropepp::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFormat = "ropepp-trainer-state";
constexpr int kStateVersion = 1;

CheckpointHook& hook() {
  static CheckpointHook instance;
  return instance;
}

void run_hook(const std::string& stage) {
  if (hook()) hook()(stage);
}

std::optional<int64_t> step_of_folder(const fs::path& path) {
  const std::string name = path.filename().string();
  if (name.size() != 13 || name.rfind("step-", 0) != 0) return std::nullopt;
  if (!std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return std::stoll(name.substr(5));
}

// Copies a stored tensor into dst after checking its shape.
void read_tensor(const TensorView& view, const ParameterInfo& info, float* dst, const fs::path& file) {
  if (view.shape != info.shape) {
    fail("{}: tensor {} has shape [{}], expected [{}] (the checkpoint belongs to a different model)", file.string(),
         view.name, fmt::join(view.shape, ", "), fmt::join(info.shape, ", "));
  }
  view.to_f32(dst, info.numel);
}

}  // namespace

void set_checkpoint_hook(CheckpointHook new_hook) { hook() = std::move(new_hook); }

std::string checkpoint_folder_name(int64_t step) { return fmt::format("step-{:08}", step); }

fs::path save_training_checkpoint(const fs::path& out_dir, const TrainModel<float>& model, const AdamW& optimizer,
                                  const TrainerState& state, int keep_last) {
  fs::create_directories(out_dir);
  const fs::path target = out_dir / checkpoint_folder_name(state.step);
  const fs::path staging = out_dir / fmt::format(".{}.tmp-{:08x}", target.filename().string(), std::random_device{}());

  // Leftovers of interrupted saves (the process died before its rename).
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".step-", 0) == 0 && name.find(".tmp-") != std::string::npos) fs::remove_all(entry.path());
  }

  try {
    std::vector<TensorToWrite> weights, moments;
    for (const ParameterInfo& info : model.parameters()) {
      weights.push_back({info.name, info.shape, model.params() + info.offset});
      moments.push_back({"exp_avg." + info.name, info.shape, optimizer.first_moment().data() + info.offset});
      moments.push_back({"exp_avg_sq." + info.name, info.shape, optimizer.second_moment().data() + info.offset});
    }
    write_checkpoint(staging, model.config(), weights, DType::kF32);
    run_hook("weights");
    write_safetensors(staging / kOptimizerFile, moments, DType::kF32,
                      {{"format", "pt"}, {"optimizer", "AdamW"}, {"step", std::to_string(optimizer.step())}});
    run_hook("optimizer");

    nlohmann::ordered_json json;
    json["format"] = kStateFormat;
    json["version"] = kStateVersion;
    json["step"] = state.step;
    json["optimizer_step"] = optimizer.step();
    json["sequences_consumed"] = state.sequences_consumed;
    json["tokens_seen"] = state.tokens_seen;
    json["seed"] = state.seed;
    json["run_settings"] = state.run_settings;
    write_file_atomic(staging / kStateFile, json.dump(2) + "\n");
    run_hook("state");
    replace_directory_atomic(staging, target);
    run_hook("rename");
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }

  if (keep_last > 0) {
    std::vector<std::pair<int64_t, fs::path>> folders;
    for (const auto& entry : fs::directory_iterator(out_dir)) {
      const auto step = step_of_folder(entry.path());
      if (step && entry.is_directory()) folders.emplace_back(*step, entry.path());
    }
    std::sort(folders.begin(), folders.end());
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < folders.size(); ++i) {
      std::error_code ignored;
      fs::remove_all(folders[i].second, ignored);
    }
  }
  return target;
}

std::optional<fs::path> latest_checkpoint(const fs::path& out_dir) {
  std::optional<std::pair<int64_t, fs::path>> best;
  std::error_code error;
  if (!fs::is_directory(out_dir, error)) return std::nullopt;
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const auto step = step_of_folder(entry.path());
    if (!step || !fs::is_regular_file(entry.path() / kStateFile)) continue;
    if (!best || *step > best->first) best = std::make_pair(*step, entry.path());
  }
  if (!best) return std::nullopt;
  return best->second;
}

void load_weights(const fs::path& folder, TrainModel<float>& model) {
  const Checkpoint checkpoint(folder);
  for (const ParameterInfo& info : model.parameters()) {
    if (!checkpoint.has(info.name)) {
      fail("checkpoint {} has no tensor {} (it belongs to a different model configuration)", folder.string(),
           info.name);
    }
    read_tensor(checkpoint.tensor(info.name), info, model.params() + info.offset, folder / "model.safetensors");
  }
}

void check_resume_settings(const nlohmann::ordered_json& saved, const nlohmann::ordered_json& current,
                           const fs::path& folder) {
  // Compared as unordered JSON: key order within objects does not matter.
  std::vector<std::string> differences;
  for (const auto& [key, value] : saved.items()) {
    if (!current.contains(key)) {
      differences.push_back(fmt::format("{} (saved {}, now unset)", key, value.dump()));
    } else if (nlohmann::json::parse(current[key].dump()) != nlohmann::json::parse(value.dump())) {
      differences.push_back(fmt::format("{} (saved {}, now {})", key, value.dump(), current[key].dump()));
    }
  }
  for (const auto& [key, value] : current.items()) {
    if (!saved.contains(key)) differences.push_back(fmt::format("{} (not saved, now {})", key, value.dump()));
  }
  if (!differences.empty()) {
    fail("cannot resume from {}: these settings differ from the saved run: {}. Resume with the saved settings, or "
         "start a new phase from its weights with --init-from",
         folder.string(), fmt::join(differences, "; "));
  }
}

TrainerState load_training_checkpoint(const fs::path& folder, TrainModel<float>& model, AdamW& optimizer) {
  const fs::path state_path = folder / kStateFile;
  ROPEPP_CHECK(fs::is_regular_file(state_path), "{} is not a training checkpoint: it has no {}", folder.string(),
               kStateFile);
  TrainerState state;
  int64_t optimizer_step = 0;
  try {
    std::ifstream in(state_path);
    const nlohmann::json json = nlohmann::json::parse(in);
    ROPEPP_CHECK(json.at("format") == kStateFormat && json.at("version") == kStateVersion,
                 "{}: not a version {} ropepp trainer state", state_path.string(), kStateVersion);
    state.step = json.at("step").get<int64_t>();
    optimizer_step = json.at("optimizer_step").get<int64_t>();
    state.sequences_consumed = json.at("sequences_consumed").get<int64_t>();
    state.tokens_seen = json.at("tokens_seen").get<int64_t>();
    state.seed = json.at("seed").get<uint64_t>();
    state.run_settings = json.at("run_settings");
  } catch (const nlohmann::json::exception& error) {
    fail("{}: invalid trainer state: {}", state_path.string(), error.what());
  }
  ROPEPP_CHECK(state.step >= 0 && optimizer_step >= 0 && state.sequences_consumed >= 0,
               "{}: negative step or data position", state_path.string());

  load_weights(folder, model);

  const fs::path optimizer_path = folder / kOptimizerFile;
  ROPEPP_CHECK(fs::is_regular_file(optimizer_path), "training checkpoint {} has no {}", folder.string(),
               kOptimizerFile);
  const SafetensorsFile moments(optimizer_path);
  for (const ParameterInfo& info : model.parameters()) {
    for (const auto& [prefix, storage] : {std::pair{"exp_avg.", &optimizer.first_moment()},
                                          std::pair{"exp_avg_sq.", &optimizer.second_moment()}}) {
      const auto found = moments.tensors().find(prefix + info.name);
      if (found == moments.tensors().end()) {
        fail("{}: missing tensor {}{} (the optimizer state is damaged or belongs to another model)",
             optimizer_path.string(), prefix, info.name);
      }
      ROPEPP_CHECK(found->second.dtype == DType::kF32, "{}: tensor {} is {}, expected F32", optimizer_path.string(),
                   found->first, dtype_name(found->second.dtype));
      read_tensor(found->second, info, storage->data() + info.offset, optimizer_path);
    }
  }
  optimizer.set_step(optimizer_step);
  return state;
}

}  // namespace ropepp::train
