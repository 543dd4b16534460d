// Attention maps: the attention probabilities of chosen layers and query
// heads on one text, and the mean attention mass as a function of distance for
// real versus imaginary heads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace ropepp::eval {

struct AttentionMapOptions {
  std::vector<int> layers;        // empty: every layer
  std::vector<int> query_heads;   // query heads to draw (RoPE++: both its heads); empty: head 0
  ForwardOptions forward;         // rope override and noise; capture is filled in
};

// Probabilities of one attention head, [n][n] (query rows, key columns).
struct HeadMap {
  int layer = 0;
  int attention_head = 0;
  int query_head = 0;
  bool imaginary = false;
  std::vector<float> probs;
};

struct AttentionMaps {
  int64_t n_tokens = 0;
  std::vector<HeadMap> maps;  // the requested heads, for the heatmaps
  // Mean probability mass at each distance 0 .. n-1, averaged over every query
  // that has a key at that distance and over every head of each kind in every
  // layer: distance_mass_real[dt] = mean over (layer, real head, query i >= dt)
  // of p(i, i - dt). Empty for a kind the model does not have.
  std::vector<double> distance_mass_real;
  std::vector<double> distance_mass_imaginary;
};

// Runs one forward over `tokens` (positions 0 .. n-1, causal) capturing the
// probabilities of every head of every layer for the distance profile, and
// keeping the requested heads for the heatmaps. Memory: layers x heads x n^2
// floats per layer at a time, so keep n to a few hundred tokens.
AttentionMaps compute_attention_maps(Model& model, std::span<const int32_t> tokens,
                                     const AttentionMapOptions& options);

// One PNG per layer: for each requested query head, the real head and (RoPE++)
// the imaginary head side by side. Returns the files written.
std::vector<std::filesystem::path> write_attention_heatmaps(const std::filesystem::path& folder,
                                                            const std::string& file_prefix,
                                                            const std::string& model_name, const AttentionMaps& maps);

struct DistanceProfile {
  std::string model_name;
  const AttentionMaps* maps = nullptr;
};

// CSV: model,kind,distance,mass. Plot: mass against distance (log y), one
// curve per (model, kind).
void write_distance_csv(const std::filesystem::path& path, const std::vector<DistanceProfile>& profiles);
void write_distance_plot(const std::filesystem::path& path, const std::vector<DistanceProfile>& profiles);

}  // namespace ropepp::eval
