#include "eval/characteristic.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "eval/plot.h"
#include "eval/table.h"

namespace ropepp::eval {

std::vector<int64_t> linear_distances(int64_t max_distance, int64_t count) {
  ROPEPP_CHECK(max_distance >= 0 && count >= 2, "invalid distance grid: max {} with {} points (need max >= 0, >= 2 points)",
               max_distance, count);
  std::vector<int64_t> distances;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t dt = static_cast<int64_t>(std::llround(static_cast<double>(max_distance) * i / (count - 1)));
    if (distances.empty() || dt != distances.back()) distances.push_back(dt);
  }
  return distances;
}

CharacteristicCurves characteristic_curves(const CharacteristicOptions& options) {
  const RopeTable table(options.rope);
  ROPEPP_CHECK(!options.distances.empty(), "characteristic curves need at least one distance");
  ROPEPP_CHECK(options.samples >= 0, "invalid sample count {}: expected >= 0", options.samples);
  ROPEPP_CHECK(options.correlation > 0.0 && options.correlation <= 1.0,
               "invalid correlation {}: expected 0 < rho <= 1 (independent q and k average to zero)",
               options.correlation);
  for (int64_t dt : options.distances) {
    ROPEPP_CHECK(dt >= 0 && dt <= (int64_t{1} << 30), "invalid distance {}: expected 0 <= dt <= 2^30", dt);
  }

  const int d = table.head_dim();
  const int half = table.half_dim();
  const double magnitude_squared = table.magnitude() * table.magnitude();

  CharacteristicCurves curves;
  curves.distances = options.distances;
  for (int64_t dt : options.distances) {
    double cos_sum = 0.0, sin_sum = 0.0;
    for (int n = 0; n < half; ++n) {
      cos_sum += std::cos(table.inv_freq()[n] * static_cast<double>(dt));
      sin_sum += std::sin(table.inv_freq()[n] * static_cast<double>(dt));
    }
    curves.closed_real.push_back(magnitude_squared * 2.0 / d * cos_sum);
    curves.closed_imaginary.push_back(magnitude_squared * 2.0 / d * sin_sum);
  }
  if (options.samples == 0) return curves;

  // Empirical means: for each distance, `samples` pairs drawn from a
  // counter-based generator (stream = distance index), so results do not depend
  // on the thread count.
  const double rho = options.correlation;
  const double rest = std::sqrt(1.0 - rho * rho);
  const double normaliser = rho * d;
  const int64_t n_distances = static_cast<int64_t>(options.distances.size());
  curves.empirical_real.assign(n_distances, 0.0);
  curves.empirical_imaginary.assign(n_distances, 0.0);
  curves.empirical_real_stderr.assign(n_distances, 0.0);
  curves.empirical_imaginary_stderr.assign(n_distances, 0.0);

#pragma omp parallel for schedule(dynamic)
  for (int64_t index = 0; index < n_distances; ++index) {
    const int64_t dt = options.distances[index];
    std::vector<float> q(d), k(d);
    double sum_re = 0.0, sum_re2 = 0.0, sum_im = 0.0, sum_im2 = 0.0;
    for (int64_t sample = 0; sample < options.samples; ++sample) {
      const uint64_t base = static_cast<uint64_t>(sample) * (2 * d + 1);
      for (int e = 0; e < d; ++e) {
        const double qe = gaussian_at(options.seed, index, base + e);
        const double noise = gaussian_at(options.seed, index, base + d + e);
        q[e] = static_cast<float>(qe);
        k[e] = static_cast<float>(rho * qe + rest * noise);
      }
      const auto key_position =
          static_cast<int32_t>(hash_counter(options.seed, index, base + 2 * d) % 4096);
      const auto query_position = static_cast<int32_t>(key_position + dt);
      rope_rotate(table, &query_position, 1, 1, q.data());
      rope_rotate(table, &key_position, 1, 1, k.data());

      // q_im = -rotate_half(q_re) = [q_re[d/2:], -q_re[:d/2]].
      double score_re = 0.0, score_im = 0.0;
      for (int n = 0; n < half; ++n) {
        score_re += static_cast<double>(q[n]) * k[n] + static_cast<double>(q[n + half]) * k[n + half];
        score_im += static_cast<double>(q[n + half]) * k[n] - static_cast<double>(q[n]) * k[n + half];
      }
      score_re /= normaliser;
      score_im /= normaliser;
      sum_re += score_re;
      sum_re2 += score_re * score_re;
      sum_im += score_im;
      sum_im2 += score_im * score_im;
    }
    const double count = static_cast<double>(options.samples);
    const double mean_re = sum_re / count, mean_im = sum_im / count;
    curves.empirical_real[index] = mean_re;
    curves.empirical_imaginary[index] = mean_im;
    if (options.samples > 1) {
      const double var_re = std::max(0.0, (sum_re2 - count * mean_re * mean_re) / (count - 1));
      const double var_im = std::max(0.0, (sum_im2 - count * mean_im * mean_im) / (count - 1));
      curves.empirical_real_stderr[index] = std::sqrt(var_re / count);
      curves.empirical_imaginary_stderr[index] = std::sqrt(var_im / count);
    }
  }
  return curves;
}

void write_characteristic_csv(const std::filesystem::path& path, const CharacteristicCurves& curves) {
  const bool empirical = !curves.empirical_real.empty();
  std::vector<std::string> columns = {"distance", "c_re", "c_im"};
  if (empirical) {
    columns.insert(columns.end(), {"empirical_re", "empirical_re_stderr", "empirical_im", "empirical_im_stderr"});
  }
  Table table(columns);
  for (size_t i = 0; i < curves.distances.size(); ++i) {
    std::vector<std::string> row = {std::to_string(curves.distances[i]), fmt::format("{:.9g}", curves.closed_real[i]),
                                    fmt::format("{:.9g}", curves.closed_imaginary[i])};
    if (empirical) {
      row.insert(row.end(), {fmt::format("{:.9g}", curves.empirical_real[i]),
                             fmt::format("{:.3g}", curves.empirical_real_stderr[i]),
                             fmt::format("{:.9g}", curves.empirical_imaginary[i]),
                             fmt::format("{:.3g}", curves.empirical_imaginary_stderr[i])});
    }
    table.add_row(std::move(row));
  }
  table.write_csv(path);
}

void write_characteristic_plot(const std::filesystem::path& path, const CharacteristicCurves& curves,
                               const RopeParams& rope) {
  LinePlot plot;
  plot.title = fmt::format("RoPE characteristic curves (head_dim {}, rope_theta {:g})", rope.head_dim, rope.theta);
  plot.x_label = "relative distance t - s (tokens)";
  plot.y_label = "mean score per unit of q.k energy";
  plot.markers = false;
  std::vector<double> xs(curves.distances.begin(), curves.distances.end());
  plot.series.push_back({"c_re (real, closed form)", xs, curves.closed_real});
  plot.series.push_back({"c_im (imaginary, closed form)", xs, curves.closed_imaginary});
  if (!curves.empirical_real.empty()) {
    plot.series.push_back({"real, random q/k mean", xs, curves.empirical_real});
    plot.series.push_back({"imaginary, random q/k mean", xs, curves.empirical_imaginary});
  }
  write_line_plot(path, plot);
}

}  // namespace ropepp::eval
