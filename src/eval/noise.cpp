#include "eval/noise.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "eval/plot.h"
#include "eval/table.h"

namespace ropepp::eval {

std::string noise_side_name(NoiseSide side) {
  switch (side) {
    case NoiseSide::kReal: return "real";
    case NoiseSide::kImaginary: return "imaginary";
    case NoiseSide::kNone: return "none";
  }
  return "none";
}

std::vector<NoisePoint> evaluate_noise(Model& model, const Tokenizer& tokenizer,
                                       std::span<const int32_t> text_tokens, const NoiseOptions& options) {
  ROPEPP_CHECK(!options.stddevs.empty(), "the noise ablation needs at least one standard deviation");
  for (double stddev : options.stddevs) {
    ROPEPP_CHECK(std::isfinite(stddev) && stddev >= 0.0, "invalid noise standard deviation {}: expected >= 0",
                 stddev);
  }
  ROPEPP_CHECK(options.perplexity_length > 0 || !options.passkey.lengths.empty(),
               "the noise ablation needs a metric: set a perplexity length or passkey lengths");

  std::vector<NoiseSide> sides = {NoiseSide::kReal};
  if (model.head_layout().imaginary) sides.push_back(NoiseSide::kImaginary);

  std::vector<NoisePoint> points;
  for (NoiseSide side : sides) {
    for (double stddev : options.stddevs) {
      NoisePoint point;
      point.side = side;
      point.stddev = stddev;
      point.perplexity = std::nan("");
      point.passkey_accuracy = std::nan("");
      ForwardOptions forward = options.forward;
      forward.noise = QueryNoise{side, stddev, options.seed};
      spdlog::info("noise ablation: {} queries, stddev {:g}", noise_side_name(side), stddev);

      if (options.perplexity_length > 0) {
        ExtrapolationOptions perplexity;
        perplexity.lengths = {options.perplexity_length};
        perplexity.tokens_per_length = options.perplexity_tokens;
        perplexity.forward = forward;
        perplexity.progress = options.progress;
        const auto result = evaluate_extrapolation(model, text_tokens, tokenizer.bos_id(), perplexity);
        ROPEPP_CHECK(!result.empty(), "the noise ablation text has {} tokens, fewer than the perplexity length {}",
                     text_tokens.size(), options.perplexity_length);
        point.perplexity = result.front().all.perplexity();
      }
      if (!options.passkey.lengths.empty()) {
        PasskeyOptions passkey = options.passkey;
        passkey.forward = forward;
        passkey.progress = options.progress;
        point.passkey_accuracy = evaluate_passkey(model, tokenizer, text_tokens, passkey).mean_accuracy();
      }
      points.push_back(point);
    }
  }
  return points;
}

void write_noise_csv(const std::filesystem::path& path, const std::vector<NoiseCurves>& curves) {
  Table table({"model", "side", "stddev", "perplexity", "passkey_accuracy"});
  for (const NoiseCurves& curve : curves) {
    for (const NoisePoint& point : curve.points) {
      table.add_row({curve.model_name, noise_side_name(point.side), fmt::format("{:g}", point.stddev),
                     fmt::format("{:.6g}", point.perplexity), fmt::format("{:.4g}", point.passkey_accuracy)});
    }
  }
  table.write_csv(path);
}

void write_noise_plots(const std::filesystem::path& perplexity_png, const std::filesystem::path& passkey_png,
                       const std::vector<NoiseCurves>& curves, int64_t perplexity_length) {
  LinePlot perplexity;
  perplexity.title = fmt::format("Query noise ablation: perplexity at {} tokens", perplexity_length);
  perplexity.x_label = "noise standard deviation";
  perplexity.y_label = "perplexity (log scale)";
  perplexity.log_y = true;
  LinePlot passkey;
  passkey.title = "Query noise ablation: passkey accuracy";
  passkey.x_label = "noise standard deviation";
  passkey.y_label = "accuracy";
  passkey.y_min = 0.0;
  passkey.y_max = 1.05;

  bool has_perplexity = false, has_passkey = false;
  for (const NoiseCurves& curve : curves) {
    for (NoiseSide side : {NoiseSide::kReal, NoiseSide::kImaginary}) {
      Series ppl{curve.model_name + ", noise on " + noise_side_name(side) + " queries", {}, {}};
      Series accuracy = ppl;
      for (const NoisePoint& point : curve.points) {
        if (point.side != side) continue;
        ppl.xs.push_back(point.stddev);
        ppl.ys.push_back(point.perplexity);
        accuracy.xs.push_back(point.stddev);
        accuracy.ys.push_back(point.passkey_accuracy);
        has_perplexity = has_perplexity || !std::isnan(point.perplexity);
        has_passkey = has_passkey || !std::isnan(point.passkey_accuracy);
      }
      if (ppl.xs.empty()) continue;
      perplexity.series.push_back(std::move(ppl));
      passkey.series.push_back(std::move(accuracy));
    }
  }
  if (has_perplexity) write_line_plot(perplexity_png, perplexity);
  if (has_passkey) write_line_plot(passkey_png, passkey);
}

}  // namespace ropepp::eval
