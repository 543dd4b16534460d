// The numbers `ropepp study` collects, shared by the runner (study.cpp) and
// the report writer (study_report.cpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "eval/attention_map.h"
#include "eval/characteristic.h"
#include "eval/noise.h"
#include "eval/passkey.h"
#include "eval/perplexity.h"

namespace ropepp::eval {

// The settings a study actually ran with, after defaults and calibration.
struct StudyPlan {
  std::string preset;
  int64_t training_length = 0;
  int64_t batch_size = 0;
  int64_t steps = 0;
  int64_t tokens_per_model = 0;
  double lr = 0.0;
  int seeds = 1;
  double budget_minutes = 0.0;
  std::vector<std::string> variants;
  std::vector<std::string> train_files;
  std::string eval_file;
  int64_t eval_tokens = 0;  // tokens of the held-out text used by the evaluations

  int64_t window = 0;
  int64_t stride = 0;
  std::vector<int64_t> extrapolation_lengths;
  int64_t tokens_per_length = 0;
  std::vector<int64_t> passkey_lengths;
  std::vector<double> passkey_depths;
  int passkey_trials = 0;
  std::vector<double> noise_stddevs;
  int64_t noise_length = 0;
  int64_t noise_tokens = 0;  // tokens scored per noise level
  int64_t attention_tokens = 0;
};

// One trained model and its evaluation results.
struct StudyModelResult {
  std::string variant;  // rope, eh or ec
  std::string label;    // RoPE, RoPE++EH, RoPE++EC
  int seed = 0;
  std::filesystem::path checkpoint;
  int64_t parameters = 0;
  int64_t kv_cache_values_per_token = 0;  // keys + values over all layers
  int head_dim = 0;
  double rope_theta = 0.0;
  double final_loss = 0.0;
  double validation_loss = -1.0;
  double train_seconds = 0.0;
  double tokens_per_second = 0.0;

  NllSum perplexity;
  std::vector<ExtrapolationPoint> extrapolation;
  PasskeyGrid passkey;
  std::vector<NoisePoint> noise;
  AttentionMaps attention;
  double eval_seconds = 0.0;
};

struct StudyResults {
  StudyPlan plan;
  std::vector<StudyModelResult> models;  // seed-major: every variant of seed 0, then of seed 1, ...
  CharacteristicCurves curves;
  double total_seconds = 0.0;
  bool reused = false;
};

// Display label of a variant ("rope" -> "RoPE").
std::string variant_label(const std::string& variant);

// Writes report.md, results.json and the CSV and PNG files into `out`.
void write_study_report(const std::filesystem::path& out, const StudyResults& results);

}  // namespace ropepp::eval
