// Perplexity evaluations: the sliding-window protocol over whole texts, and
// perplexity at fixed lengths for the length-extrapolation curve.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/scoring.h"
#include "eval/windows.h"
#include "model/model.h"

namespace ropepp::eval {

struct SlidingWindowOptions {
  int64_t window = 4096;  // tokens fed per forward call
  int64_t stride = 512;   // new tokens scored per window after the first
  ForwardOptions forward;
  bool progress = true;
  int64_t logits_budget_bytes = kDefaultLogitsBudgetBytes;
};

// NLL of every target of `tokens` under the sliding-window protocol of
// plan_sliding_windows. `tokens` normally starts with BOS, so that every token
// of the text is scored; `bytes` (the text's UTF-8 size) is copied into the
// result for bits per byte.
NllSum sliding_window_nll(Model& model, std::span<const int32_t> tokens, int64_t bytes,
                          const SlidingWindowOptions& options);

struct ExtrapolationOptions {
  std::vector<int64_t> lengths;     // evaluation lengths in tokens, BOS included
  int64_t tokens_per_length = 16384;  // chunks per length: max(1, tokens_per_length / length)
  ForwardOptions forward;
  bool progress = true;
  int64_t logits_budget_bytes = kDefaultLogitsBudgetBytes;
};

struct ExtrapolationPoint {
  int64_t length = 0;
  int64_t chunks = 0;
  NllSum all;   // every target of every chunk
  NllSum tail;  // targets at positions >= length / 2, where extrapolation failures show first
};

// Evaluation lengths from training_length / 2 to training_length * max_multiple,
// doubling: L/2, L, 2L, 4L, ...
std::vector<int64_t> doubling_lengths(int64_t training_length, int64_t max_multiple);

// Splits `text_tokens` (no BOS) into chunks and scores each as its own sequence
// at positions 0 .. length-1: [BOS] + length-1 text tokens, or length text
// tokens without BOS. Lengths for which the text is too short are skipped with
// a warning.
std::vector<ExtrapolationPoint> evaluate_extrapolation(Model& model, std::span<const int32_t> text_tokens,
                                                       std::optional<int32_t> bos,
                                                       const ExtrapolationOptions& options);

// One curve of the extrapolation plot: a model, possibly with a scaling.
struct ExtrapolationCurve {
  std::string name;
  std::vector<ExtrapolationPoint> points;
};

// CSV: curve,length,chunks,targets,perplexity,tail_perplexity. The plot shows
// perplexity against length on log axes; training_length > 0 is named in the title.
void write_extrapolation_csv(const std::filesystem::path& path, const std::vector<ExtrapolationCurve>& curves);
void write_extrapolation_plot(const std::filesystem::path& path, const std::vector<ExtrapolationCurve>& curves,
                              int64_t training_length);

}  // namespace ropepp::eval
