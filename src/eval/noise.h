// The RoPE++ paper's noise ablation: Gaussian noise of increasing standard
// deviation added to the rotated queries of the real heads only, or of the
// imaginary heads only (kernels' QueryNoise), with a long-context metric
// tracked against the noise level. If the imaginary heads carry long-range
// information, corrupting them should hurt more.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/passkey.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::eval {

struct NoiseOptions {
  std::vector<double> stddevs = {0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5};
  uint64_t seed = 0;

  // Perplexity at one long length (0 skips it).
  int64_t perplexity_length = 0;
  int64_t perplexity_tokens = 16384;  // scored tokens: max(1, this / length) chunks

  // Passkey accuracy on a grid (empty lengths skip it); its forward options are
  // replaced by the noise of each point.
  PasskeyOptions passkey;

  ForwardOptions forward;  // rope override shared by every point
  bool progress = true;
};

struct NoisePoint {
  NoiseSide side = NoiseSide::kReal;
  double stddev = 0.0;
  double perplexity = 0.0;         // NaN when not measured
  double passkey_accuracy = 0.0;   // NaN when not measured
};

// Runs every stddev on the real side and, for RoPE++ models, on the imaginary
// side (a vanilla model has no imaginary heads, so that side is skipped).
// A stddev of 0 is the noiseless model.
std::vector<NoisePoint> evaluate_noise(Model& model, const Tokenizer& tokenizer,
                                       std::span<const int32_t> text_tokens, const NoiseOptions& options);

std::string noise_side_name(NoiseSide side);  // "real", "imaginary", "none"

struct NoiseCurves {
  std::string model_name;
  std::vector<NoisePoint> points;
};

// CSV: model,side,stddev,perplexity,passkey_accuracy. Plots: one per metric,
// one curve per (model, side); a metric that no point measured is not plotted.
void write_noise_csv(const std::filesystem::path& path, const std::vector<NoiseCurves>& curves);
void write_noise_plots(const std::filesystem::path& perplexity_png, const std::filesystem::path& passkey_png,
                       const std::vector<NoiseCurves>& curves, int64_t perplexity_length);

}  // namespace ropepp::eval
