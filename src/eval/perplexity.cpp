#include "eval/perplexity.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/plot.h"
#include "eval/table.h"

namespace ropepp::eval {

NllSum sliding_window_nll(Model& model, std::span<const int32_t> tokens, int64_t bytes,
                          const SlidingWindowOptions& options) {
  const std::vector<Window> windows =
      plan_sliding_windows(static_cast<int64_t>(tokens.size()), options.window, options.stride);
  std::optional<ProgressBar> progress;
  if (options.progress) progress.emplace(static_cast<int64_t>(windows.size()), "perplexity");

  NllSum sum;
  sum.bytes = bytes;
  for (size_t w = 0; w < windows.size(); ++w) {
    const Window& window = windows[w];
    const std::span<const int32_t> span = tokens.subspan(window.begin, window.end - window.begin);
    const std::vector<double> nll = target_nll(model, span, window.score_begin - window.begin, options.forward,
                                               options.logits_budget_bytes);
    for (double value : nll) sum.nll += value;
    sum.targets += static_cast<int64_t>(nll.size());
    if (progress) progress->update(static_cast<int64_t>(w) + 1, fmt::format("ppl {:.3f}", sum.perplexity()));
  }
  if (progress) progress->finish(fmt::format("ppl {:.3f}", sum.perplexity()));
  return sum;
}

std::vector<int64_t> doubling_lengths(int64_t training_length, int64_t max_multiple) {
  ROPEPP_CHECK(training_length >= 4, "invalid training length {}: expected at least 4 tokens", training_length);
  ROPEPP_CHECK(max_multiple >= 1, "invalid length multiple {}: expected >= 1", max_multiple);
  std::vector<int64_t> lengths = {training_length / 2};
  for (int64_t multiple = 1; multiple <= max_multiple; multiple *= 2) lengths.push_back(training_length * multiple);
  return lengths;
}

std::vector<ExtrapolationPoint> evaluate_extrapolation(Model& model, std::span<const int32_t> text_tokens,
                                                       std::optional<int32_t> bos,
                                                       const ExtrapolationOptions& options) {
  ROPEPP_CHECK(!options.lengths.empty(), "length extrapolation needs at least one evaluation length");
  ROPEPP_CHECK(options.tokens_per_length >= 1, "invalid tokens per length {}: expected >= 1",
               options.tokens_per_length);
  const int64_t prefix = bos ? 1 : 0;

  // Plan every length first so the progress bar counts chunks.
  std::vector<std::vector<Window>> plans;
  int64_t total_chunks = 0;
  for (int64_t length : options.lengths) {
    ROPEPP_CHECK(length >= 2 + prefix, "invalid evaluation length {}: expected at least {} tokens", length,
                 2 + prefix);
    const int64_t max_chunks = std::max<int64_t>(1, options.tokens_per_length / length);
    plans.push_back(plan_chunks(static_cast<int64_t>(text_tokens.size()), length - prefix, max_chunks));
    if (plans.back().empty()) {
      spdlog::warn("skipping evaluation length {}: the text has only {} tokens", length, text_tokens.size());
    }
    total_chunks += static_cast<int64_t>(plans.back().size());
  }

  std::optional<ProgressBar> progress;
  if (options.progress) progress.emplace(total_chunks, "length extrapolation");
  int64_t done = 0;
  std::vector<ExtrapolationPoint> points;
  std::vector<int32_t> sequence;
  for (size_t li = 0; li < options.lengths.size(); ++li) {
    if (plans[li].empty()) continue;
    const int64_t length = options.lengths[li];
    ExtrapolationPoint point;
    point.length = length;
    for (const Window& chunk : plans[li]) {
      sequence.clear();
      if (bos) sequence.push_back(*bos);
      sequence.insert(sequence.end(), text_tokens.begin() + chunk.begin, text_tokens.begin() + chunk.end);
      const std::vector<double> nll =
          target_nll(model, sequence, 1, options.forward, options.logits_budget_bytes);
      for (size_t i = 0; i < nll.size(); ++i) {
        const int64_t position = static_cast<int64_t>(i) + 1;  // target index in the sequence
        point.all.nll += nll[i];
        point.all.targets += 1;
        if (position >= length / 2) {
          point.tail.nll += nll[i];
          point.tail.targets += 1;
        }
      }
      point.chunks += 1;
      if (progress) progress->update(++done, fmt::format("length {}: ppl {:.3f}", length, point.all.perplexity()));
    }
    points.push_back(point);
  }
  if (progress) progress->finish();
  return points;
}

void write_extrapolation_csv(const std::filesystem::path& path, const std::vector<ExtrapolationCurve>& curves) {
  Table table({"curve", "length", "chunks", "targets", "perplexity", "tail_perplexity"});
  for (const ExtrapolationCurve& curve : curves) {
    for (const ExtrapolationPoint& point : curve.points) {
      table.add_row({curve.name, std::to_string(point.length), std::to_string(point.chunks),
                     std::to_string(point.all.targets), fmt::format("{:.6g}", point.all.perplexity()),
                     fmt::format("{:.6g}", point.tail.perplexity())});
    }
  }
  table.write_csv(path);
}

void write_extrapolation_plot(const std::filesystem::path& path, const std::vector<ExtrapolationCurve>& curves,
                              int64_t training_length) {
  LinePlot plot;
  plot.title = training_length > 0
                   ? fmt::format("Length extrapolation (training length {} tokens)", training_length)
                   : "Length extrapolation";
  plot.x_label = "evaluation length (tokens, log scale)";
  plot.y_label = "perplexity (log scale)";
  plot.log_x = true;
  plot.log_y = true;
  for (const ExtrapolationCurve& curve : curves) {
    Series series{curve.name, {}, {}};
    for (const ExtrapolationPoint& point : curve.points) {
      series.xs.push_back(static_cast<double>(point.length));
      series.ys.push_back(point.all.perplexity());
    }
    plot.series.push_back(std::move(series));
  }
  write_line_plot(path, plot);
}

}  // namespace ropepp::eval
