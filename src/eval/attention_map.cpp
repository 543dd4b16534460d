#include "eval/attention_map.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "eval/plot.h"
#include "eval/table.h"

namespace ropepp::eval {

AttentionMaps compute_attention_maps(Model& model, std::span<const int32_t> tokens,
                                     const AttentionMapOptions& options) {
  const HeadLayout& layout = model.head_layout();
  const int n_layers = model.config().num_hidden_layers;
  const auto n = static_cast<int64_t>(tokens.size());
  ROPEPP_CHECK(n >= 2, "attention maps need at least 2 tokens, found {}", n);

  std::vector<int> layers = options.layers;
  if (layers.empty()) {
    for (int layer = 0; layer < n_layers; ++layer) layers.push_back(layer);
  }
  for (int layer : layers) {
    ROPEPP_CHECK(layer >= 0 && layer < n_layers, "invalid layer {}: the model has layers 0 to {}", layer,
                 n_layers - 1);
  }
  std::vector<int> query_heads = options.query_heads.empty() ? std::vector<int>{0} : options.query_heads;
  for (int head : query_heads) {
    ROPEPP_CHECK(head >= 0 && head < layout.n_query_heads, "invalid query head {}: the model has query heads 0 to {}",
                 head, layout.n_query_heads - 1);
  }

  AttentionMaps result;
  result.n_tokens = n;
  std::vector<double> sum_real(n, 0.0), sum_imaginary(n, 0.0);
  int64_t real_heads = 0, imaginary_heads = 0;

  // One forward per layer keeps the capture at heads x n^2 floats.
  std::vector<int> all_heads(layout.n_attention_heads());
  for (int h = 0; h < layout.n_attention_heads(); ++h) all_heads[h] = h;
  for (int layer : layers) {
    ForwardOptions forward = options.forward;
    forward.logits_start = n;  // no logits needed
    forward.capture = {AttentionCaptureRequest{layer, all_heads}};
    const ForwardOutput output = model.forward({tokens, {}, {}}, nullptr, forward);
    ROPEPP_CHECK(output.attention.size() == 1, "the model returned {} attention captures for 1 request",
                 output.attention.size());
    const AttentionCapture& capture = output.attention.front();
    ROPEPP_CHECK(capture.n_queries == n && capture.n_keys == n &&
                     capture.probs.size() == all_heads.size() * static_cast<size_t>(n * n),
                 "attention capture of layer {} has shape {} x {} x {}, expected {} x {} x {}", layer,
                 capture.heads.size(), capture.n_queries, capture.n_keys, all_heads.size(), n, n);

    for (int head : all_heads) {
      const float* probs = capture.probs.data() + static_cast<size_t>(head) * n * n;
      const bool imaginary = layout.is_imaginary_head(head);
      std::vector<double>& sums = imaginary ? sum_imaginary : sum_real;
      (imaginary ? imaginary_heads : real_heads) += 1;
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t dt = 0; dt <= i; ++dt) sums[dt] += probs[i * n + (i - dt)];
      }
      const int query_head = layout.query_head_of(head);
      if (std::find(query_heads.begin(), query_heads.end(), query_head) != query_heads.end()) {
        result.maps.push_back({layer, head, query_head, imaginary, std::vector<float>(probs, probs + n * n)});
      }
    }
  }

  // Queries i >= dt have a key at distance dt: n - dt of them per head.
  auto normalise = [&](const std::vector<double>& sums, int64_t heads) {
    std::vector<double> mass;
    if (heads == 0) return mass;
    for (int64_t dt = 0; dt < n; ++dt) mass.push_back(sums[dt] / (static_cast<double>(heads) * (n - dt)));
    return mass;
  };
  result.distance_mass_real = normalise(sum_real, real_heads);
  result.distance_mass_imaginary = normalise(sum_imaginary, imaginary_heads);
  return result;
}

std::vector<std::filesystem::path> write_attention_heatmaps(const std::filesystem::path& folder,
                                                            const std::string& file_prefix,
                                                            const std::string& model_name, const AttentionMaps& maps) {
  std::map<int, std::vector<const HeadMap*>> by_layer;
  for (const HeadMap& map : maps.maps) by_layer[map.layer].push_back(&map);

  std::vector<std::filesystem::path> files;
  const int n = static_cast<int>(maps.n_tokens);
  for (const auto& [layer, heads] : by_layer) {
    std::vector<Heatmap> panels;
    for (const HeadMap* head : heads) {
      Heatmap panel;
      panel.title = fmt::format("query head {} {}", head->query_head, head->imaginary ? "imaginary" : "real");
      panel.x_label = "key position";
      panel.y_label = "query position";
      panel.rows = n;
      panel.columns = n;
      // sqrt spreads small probabilities over the colour range; the colour bar
      // shows sqrt(p) on [0, 1].
      panel.values.resize(head->probs.size());
      for (size_t i = 0; i < head->probs.size(); ++i) panel.values[i] = std::sqrt(std::max(0.0f, head->probs[i]));
      panel.value_min = 0.0;
      panel.value_max = 1.0;
      panels.push_back(std::move(panel));
    }
    const std::filesystem::path file = folder / fmt::format("{}_layer{}.png", file_prefix, layer);
    write_heatmaps(file, fmt::format("{}: attention probabilities, layer {} (colour: sqrt of p)", model_name, layer),
                   panels, 420, 440);
    files.push_back(file);
  }
  return files;
}

void write_distance_csv(const std::filesystem::path& path, const std::vector<DistanceProfile>& profiles) {
  Table table({"model", "kind", "distance", "mass"});
  for (const DistanceProfile& profile : profiles) {
    for (const auto& [kind, mass] : {std::pair{"real", &profile.maps->distance_mass_real},
                                     std::pair{"imaginary", &profile.maps->distance_mass_imaginary}}) {
      for (size_t dt = 0; dt < mass->size(); ++dt) {
        table.add_row({profile.model_name, kind, std::to_string(dt), fmt::format("{:.6g}", (*mass)[dt])});
      }
    }
  }
  table.write_csv(path);
}

void write_distance_plot(const std::filesystem::path& path, const std::vector<DistanceProfile>& profiles) {
  LinePlot plot;
  plot.title = "Mean attention probability by distance";
  plot.x_label = "distance between query and key (tokens)";
  plot.y_label = "mean probability (log scale)";
  plot.log_y = true;
  plot.markers = false;
  for (const DistanceProfile& profile : profiles) {
    for (const auto& [kind, mass] : {std::pair{"real heads", &profile.maps->distance_mass_real},
                                     std::pair{"imaginary heads", &profile.maps->distance_mass_imaginary}}) {
      if (mass->empty()) continue;
      Series series{profile.model_name + ", " + kind, {}, *mass};
      for (size_t dt = 0; dt < mass->size(); ++dt) series.xs.push_back(static_cast<double>(dt));
      plot.series.push_back(std::move(series));
    }
  }
  write_line_plot(path, plot);
}

}  // namespace ropepp::eval
