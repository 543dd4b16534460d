// Writes the files of `ropepp study`: CSV and PNG per evaluation, results.json
// and report.md with tables and statements computed from the numbers.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/inputs.h"
#include "eval/study_results.h"
#include "eval/table.h"

namespace ropepp::eval {
namespace fs = std::filesystem;

namespace {

// The results of one variant across seeds, in seed order.
struct VariantGroup {
  std::string variant;
  std::string label;
  std::vector<const StudyModelResult*> seeds;

  template <typename F>
  MeanStd stat(F value) const {
    std::vector<double> values;
    for (const StudyModelResult* result : seeds) values.push_back(value(*result));
    return mean_std(values);
  }
};

std::vector<VariantGroup> group_by_variant(const StudyResults& results) {
  std::vector<VariantGroup> groups;
  for (const std::string& variant : results.plan.variants) {
    VariantGroup group{variant, variant_label(variant), {}};
    for (const StudyModelResult& result : results.models) {
      if (result.variant == variant) group.seeds.push_back(&result);
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

const VariantGroup* find_group(const std::vector<VariantGroup>& groups, const std::string& variant) {
  for (const VariantGroup& group : groups) {
    if (group.variant == variant) return &group;
  }
  return nullptr;
}

double extrapolation_ppl(const StudyModelResult& result, int64_t length) {
  for (const ExtrapolationPoint& point : result.extrapolation) {
    if (point.length == length) return point.all.perplexity();
  }
  return std::nan("");
}

double passkey_accuracy_at_length(const StudyModelResult& result, size_t length_index) {
  double sum = 0.0;
  for (size_t d = 0; d < result.passkey.depths.size(); ++d) sum += result.passkey.accuracy_at(length_index, d);
  return sum / static_cast<double>(result.passkey.depths.size());
}

double noise_ppl(const StudyModelResult& result, NoiseSide side, double stddev) {
  for (const NoisePoint& point : result.noise) {
    if (point.side == side && point.stddev == stddev) return point.perplexity;
  }
  return std::nan("");
}

double noise_accuracy(const StudyModelResult& result, NoiseSide side, double stddev) {
  for (const NoisePoint& point : result.noise) {
    if (point.side == side && point.stddev == stddev) return point.passkey_accuracy;
  }
  return std::nan("");
}

// Mean attention probability mass per query placed on keys at distance >=
// `from`: sum over dt >= from of mass[dt] * (queries with such a key) / n.
double long_range_share(const std::vector<double>& mass, int64_t from) {
  const auto n = static_cast<int64_t>(mass.size());
  double share = 0.0;
  for (int64_t dt = from; dt < n; ++dt) share += mass[dt] * static_cast<double>(n - dt);
  return share / static_cast<double>(n);
}

// Relative changes below this are reported as no change.
constexpr double kNegligibleChange = 0.01;

// Long-range attention shares closer than this (2 percentage points) count as a tie.
constexpr double kAttentionShareTie = 0.02;

std::string percent(double fraction) { return format_number(100.0 * fraction, 3) + "%"; }

std::string signed_percent(double fraction) {
  return (fraction >= 0 ? "+" : "") + format_number(100.0 * fraction, 3) + "%";
}

// ---- CSV and plots ---------------------------------------------------------------

void write_evaluation_files(const fs::path& out, const StudyResults& results,
                            const std::vector<VariantGroup>& groups) {
  const bool several_seeds = results.plan.seeds > 1;
  auto seeded_name = [&](const StudyModelResult& result) {
    return several_seeds ? fmt::format("{} seed {}", result.label, result.seed) : result.label;
  };

  Table training({"model", "seed", "parameters", "kv_cache_values_per_token", "final_loss", "validation_loss",
                  "tokens_per_second", "train_seconds", "checkpoint"});
  Table perplexity({"model", "seed", "targets", "perplexity", "bits_per_byte"});
  for (const StudyModelResult& result : results.models) {
    training.add_row({result.label, std::to_string(result.seed), std::to_string(result.parameters),
                      std::to_string(result.kv_cache_values_per_token), fmt::format("{:.6g}", result.final_loss),
                      fmt::format("{:.6g}", result.validation_loss), fmt::format("{:.6g}", result.tokens_per_second),
                      fmt::format("{:.1f}", result.train_seconds), result.checkpoint.string()});
    perplexity.add_row({result.label, std::to_string(result.seed), std::to_string(result.perplexity.targets),
                        fmt::format("{:.6g}", result.perplexity.perplexity()),
                        fmt::format("{:.6g}", result.perplexity.bits_per_byte())});
  }
  training.write_csv(out / "training.csv");
  perplexity.write_csv(out / "perplexity.csv");

  // Per-seed rows in the CSVs; the plots show the mean over seeds.
  std::vector<ExtrapolationCurve> extrapolation_rows, extrapolation_mean;
  std::vector<std::string> passkey_names, passkey_mean_names;
  std::vector<PasskeyGrid> passkey_rows, passkey_mean;
  std::vector<NoiseCurves> noise_rows, noise_mean;
  for (const StudyModelResult& result : results.models) {
    extrapolation_rows.push_back({seeded_name(result), result.extrapolation});
    passkey_names.push_back(seeded_name(result));
    passkey_rows.push_back(result.passkey);
    noise_rows.push_back({seeded_name(result), result.noise});
  }
  for (const VariantGroup& group : groups) {
    const StudyModelResult& first = *group.seeds.front();
    ExtrapolationCurve curve{group.label, first.extrapolation};
    PasskeyGrid grid = first.passkey;
    NoiseCurves noise{group.label, first.noise};
    for (size_t s = 1; s < group.seeds.size(); ++s) {
      const StudyModelResult& other = *group.seeds[s];
      for (size_t i = 0; i < curve.points.size(); ++i) curve.points[i].all.add(other.extrapolation[i].all);
      for (size_t i = 0; i < grid.accuracy.size(); ++i) grid.accuracy[i] += other.passkey.accuracy[i];
      for (size_t i = 0; i < noise.points.size(); ++i) {
        noise.points[i].perplexity += other.noise[i].perplexity;
        noise.points[i].passkey_accuracy += other.noise[i].passkey_accuracy;
      }
    }
    const auto count = static_cast<double>(group.seeds.size());
    for (double& accuracy : grid.accuracy) accuracy /= count;
    for (NoisePoint& point : noise.points) {
      point.perplexity /= count;
      point.passkey_accuracy /= count;
    }
    extrapolation_mean.push_back(std::move(curve));
    passkey_mean_names.push_back(group.label);
    passkey_mean.push_back(std::move(grid));
    noise_mean.push_back(std::move(noise));
  }
  write_extrapolation_csv(out / "extrapolation.csv", extrapolation_rows);
  write_extrapolation_plot(out / "extrapolation.png", extrapolation_mean, results.plan.training_length);
  write_passkey_csv(out / "passkey.csv", passkey_names, passkey_rows);
  write_passkey_heatmaps(out / "passkey.png", passkey_mean_names, passkey_mean);
  write_noise_csv(out / "noise.csv", noise_rows);
  write_noise_plots(out / "noise_perplexity.png", out / "noise_passkey.png", noise_mean, results.plan.noise_length);

  // Attention: the first seed of each variant.
  std::vector<DistanceProfile> profiles;
  for (const VariantGroup& group : groups) {
    const StudyModelResult& first = *group.seeds.front();
    profiles.push_back({group.label, &first.attention});
    write_attention_heatmaps(out, "attention_" + group.variant, group.label, first.attention);
  }
  write_distance_csv(out / "attention_distance.csv", profiles);
  write_distance_plot(out / "attention_distance.png", profiles);

  RopeParams rope;
  rope.head_dim = results.models.front().head_dim;
  rope.theta = results.models.front().rope_theta;
  write_characteristic_csv(out / "characteristic_curves.csv", results.curves);
  write_characteristic_plot(out / "characteristic_curves.png", results.curves, rope);
}

// ---- Statements computed from the numbers ------------------------------------------

std::vector<std::string> findings(const StudyResults& results, const std::vector<VariantGroup>& groups) {
  std::vector<std::string> lines;
  const StudyPlan& plan = results.plan;
  const bool several_seeds = plan.seeds > 1;
  // Appended to a verdict drawn from one seed, where a few percent can be noise.
  const std::string seed_caveat = several_seeds ? "" : " (one seed only, so a hint rather than a result)";
  const VariantGroup* rope = find_group(groups, "rope");

  // Perplexity at the training length.
  const VariantGroup* best = &groups.front();
  for (const VariantGroup& group : groups) {
    if (group.stat([](const auto& r) { return r.perplexity.perplexity(); }).mean <
        best->stat([](const auto& r) { return r.perplexity.perplexity(); }).mean) {
      best = &group;
    }
  }
  std::string line = fmt::format("Held-out perplexity (window {}): {} is lowest", plan.window, best->label);
  if (rope != nullptr) {
    const MeanStd base = rope->stat([](const auto& r) { return r.perplexity.perplexity(); });
    std::vector<std::string> parts;
    for (const VariantGroup& group : groups) {
      if (&group == rope) continue;
      const MeanStd value = group.stat([](const auto& r) { return r.perplexity.perplexity(); });
      std::string part = fmt::format("{} {} against RoPE", group.label, signed_percent(value.mean / base.mean - 1));
      if (several_seeds) {
        const bool beyond = std::abs(value.mean - base.mean) > value.stddev + base.stddev;
        part += beyond ? " (larger than the spread across seeds)" : " (within the spread across seeds)";
      }
      parts.push_back(part);
    }
    if (!parts.empty()) line += fmt::format("; {}", fmt::join(parts, "; "));
  }
  lines.push_back(line + (several_seeds ? "." : ". With one seed, differences of a few percent may be noise."));

  // Length extrapolation: perplexity at the longest length relative to the training length.
  const int64_t longest = plan.extrapolation_lengths.back();
  std::vector<std::pair<double, std::string>> ratios;
  for (const VariantGroup& group : groups) {
    const MeanStd ratio = group.stat([&](const auto& r) {
      return extrapolation_ppl(r, longest) / extrapolation_ppl(r, plan.training_length);
    });
    ratios.push_back({ratio.mean, group.label});
  }
  std::sort(ratios.begin(), ratios.end());
  std::vector<std::string> ratio_parts;
  for (const auto& [ratio, label] : ratios) ratio_parts.push_back(fmt::format("{} x{}", label, format_number(ratio, 4)));
  std::string verdict;
  if (ratios.back().first - ratios.front().first < kNegligibleChange * ratios.front().first) {
    verdict = "the factors differ by less than 1%, so no variant extrapolates better here";
  } else {
    verdict = fmt::format("{} has the smallest factor{}", ratios.front().second, seed_caveat);
  }
  if (ratios.back().first <= 1.0) {
    verdict += "; no model gets worse at the longer length, so these models do not yet depend on position enough "
               "to fail beyond their training length";
  } else if (ratios.front().first > 1.5) {
    verdict += ", but every model degrades clearly beyond its training length";
  }
  lines.push_back(fmt::format(
      "Length extrapolation: from the training length {} to {} tokens perplexity changes by a factor of {}; {}.",
      plan.training_length, longest, fmt::join(ratio_parts, ", "), verdict));

  // Passkey retrieval.
  std::vector<std::string> passkey_parts;
  double best_accuracy = 0.0;
  for (const VariantGroup& group : groups) {
    const MeanStd accuracy = group.stat([](const auto& r) { return r.passkey.mean_accuracy(); });
    best_accuracy = std::max(best_accuracy, accuracy.mean);
    passkey_parts.push_back(fmt::format("{} {}", group.label, percent(accuracy.mean)));
  }
  if (best_accuracy == 0.0) {
    lines.push_back(fmt::format("Passkey retrieval: no model retrieved a single passkey ({}). Models this small and "
                                "this briefly trained have not learned to copy a number from far back, so this test "
                                "does not separate the variants here.",
                                fmt::join(passkey_parts, ", ")));
  } else {
    lines.push_back(fmt::format("Passkey retrieval, mean accuracy over all lengths and depths: {}.",
                                fmt::join(passkey_parts, ", ")));
  }

  // Noise ablation on RoPE++ models.
  const double top = plan.noise_stddevs.back();
  for (const VariantGroup& group : groups) {
    if (group.variant == "rope") continue;
    const MeanStd clean = group.stat([&](const auto& r) { return noise_ppl(r, NoiseSide::kReal, 0.0); });
    const MeanStd real = group.stat([&](const auto& r) { return noise_ppl(r, NoiseSide::kReal, top); });
    const MeanStd imaginary = group.stat([&](const auto& r) { return noise_ppl(r, NoiseSide::kImaginary, top); });
    const double real_change = real.mean / clean.mean - 1, imaginary_change = imaginary.mean / clean.mean - 1;
    std::string verdict;
    if (std::max(std::abs(real_change), std::abs(imaginary_change)) < kNegligibleChange) {
      verdict = "Neither side changes perplexity by 1% or more, so this ablation shows no dependence on either side.";
    } else if (std::abs(imaginary_change - real_change) < kNegligibleChange) {
      // The two sides are compared on the clean perplexity's scale: within 1% of it they are a tie.
      verdict = "The two sides differ by less than 1% of the clean perplexity, so neither hurts clearly more.";
    } else if (imaginary_change > real_change) {
      verdict = "Corrupting the imaginary side hurts more, as the RoPE++ paper reports" + seed_caveat + ".";
    } else {
      verdict = "Here corrupting the real side hurts more, unlike the RoPE++ paper's finding" + seed_caveat + ".";
    }
    lines.push_back(fmt::format(
        "Noise ablation, {}: noise of standard deviation {} on the imaginary queries changes perplexity at {} tokens "
        "by {}, on the real queries by {}. {}",
        group.label, top, plan.noise_length, signed_percent(imaginary_change), signed_percent(real_change), verdict));
  }

  // Attention by distance.
  for (const VariantGroup& group : groups) {
    const AttentionMaps& maps = group.seeds.front()->attention;
    if (maps.distance_mass_imaginary.empty()) continue;
    const int64_t from = std::max<int64_t>(1, maps.n_tokens / 4);
    const double real = long_range_share(maps.distance_mass_real, from);
    const double imaginary = long_range_share(maps.distance_mass_imaginary, from);
    std::string verdict;
    // Shares are fractions of attention mass, so the tie band is in absolute points.
    if (std::abs(imaginary - real) < kAttentionShareTie) {
      verdict = ", about the same";
    } else if (imaginary > real) {
      verdict = ", so the imaginary heads look further back, as the paper's attention maps show" + seed_caveat;
    } else {
      verdict =
          ", so here the imaginary heads look less far back than the real ones, unlike the paper's maps" + seed_caveat;
    }
    lines.push_back(fmt::format(
        "Attention, {}: imaginary heads put {} of their attention on keys at least {} tokens away, real heads {}{}.",
        group.label, percent(imaginary), from, percent(real), verdict));
  }

  // Characteristic curves: means over the first sixteenth and the second half of the distances.
  const CharacteristicCurves& curves = results.curves;
  const int64_t max_distance = curves.distances.back();
  double near_re = 0, near_im = 0, far_re = 0, far_im = 0, worst = 0;
  int near_count = 0, far_count = 0;
  for (size_t i = 0; i < curves.distances.size(); ++i) {
    if (curves.distances[i] <= max_distance / 16) {
      near_re += curves.closed_real[i], near_im += curves.closed_imaginary[i], ++near_count;
    } else if (curves.distances[i] >= max_distance / 2) {
      far_re += curves.closed_real[i], far_im += curves.closed_imaginary[i], ++far_count;
    }
    if (i < curves.empirical_real.size()) {
      worst = std::max(worst, std::abs(curves.empirical_real[i] - curves.closed_real[i]));
      worst = std::max(worst, std::abs(curves.empirical_imaginary[i] - curves.closed_imaginary[i]));
    }
  }
  lines.push_back(fmt::format(
      "Characteristic curves (head_dim {}): averaged over distances 0 to {}, c_re is {} and c_im {}; over {} to {}, "
      "c_re is {} and c_im {}. Random q/k means match the closed forms within {} (largest absolute difference).",
      results.models.front().head_dim, max_distance / 16, format_number(near_re / near_count, 3),
      format_number(near_im / near_count, 3), max_distance / 2, max_distance, format_number(far_re / far_count, 3),
      format_number(far_im / far_count, 3), format_number(worst, 2)));
  return lines;
}

// ---- report.md --------------------------------------------------------------------

std::string report_markdown(const StudyResults& results, const std::vector<VariantGroup>& groups,
                            const std::vector<std::string>& attention_images) {
  const StudyPlan& plan = results.plan;
  auto mean_cell = [](const MeanStd& value) { return format_mean_std(value); };
  std::string md;
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));

  md += "# RoPE versus RoPE++: study report\n\n";
  md += fmt::format("Written by `ropepp study` on {} after {:.1f} minutes (budget {:.0f} minutes){}.\n\n", date,
                    results.total_seconds / 60.0, plan.budget_minutes,
                    results.reused ? "; models trained by an earlier run were reused where present" : "");
  md += "Each variant was trained from scratch on the same data with the same token budget and seeds, then "
        "evaluated on a book held out from training. Values are means over seeds";
  md += plan.seeds > 1 ? " with the sample standard deviation after ±.\n\n" : " (one seed here).\n\n";

  md += "## Setup\n\n";
  Table setup({"setting", "value"});
  setup.add_row({"model preset", plan.preset});
  setup.add_row({"training length (tokens)", std::to_string(plan.training_length)});
  setup.add_row({"tokens per model", std::to_string(plan.tokens_per_model)});
  setup.add_row({"steps x batch", fmt::format("{} x {}", plan.steps, plan.batch_size)});
  setup.add_row({"learning rate (warmup-stable-decay)", format_number(plan.lr, 3)});
  setup.add_row({"seeds", std::to_string(plan.seeds)});
  setup.add_row({"tokenizer", "byte (one token per byte)"});
  setup.add_row({"training files", std::to_string(plan.train_files.size())});
  setup.add_row({"evaluation text", fs::path(plan.eval_file).filename().string()});
  md += setup.to_markdown() + "\n";

  md += "## Training\n\n";
  Table training({"model", "parameters", "KV cache values per token", "final training loss", "validation loss",
                  "tokens/s"});
  for (const VariantGroup& group : groups) {
    const StudyModelResult& first = *group.seeds.front();
    training.add_row({group.label, std::to_string(first.parameters), std::to_string(first.kv_cache_values_per_token),
                      mean_cell(group.stat([](const auto& r) { return r.final_loss; })),
                      mean_cell(group.stat([](const auto& r) { return r.validation_loss; })),
                      format_number(group.stat([](const auto& r) { return r.tokens_per_second; }).mean, 4)});
  }
  md += training.to_markdown() + "\nLosses are in nats per token; a validation loss of -1 means none was computed.\n\n";

  md += fmt::format("## Perplexity on held-out text\n\nSliding window of {} tokens with stride {} over the first {} "
                    "tokens of the evaluation text; each window scores only its new tokens.\n\n",
                    plan.window, plan.stride, plan.eval_tokens);
  Table perplexity({"model", "perplexity", "bits per byte"});
  for (const VariantGroup& group : groups) {
    perplexity.add_row({group.label, mean_cell(group.stat([](const auto& r) { return r.perplexity.perplexity(); })),
                        mean_cell(group.stat([](const auto& r) { return r.perplexity.bits_per_byte(); }))});
  }
  md += perplexity.to_markdown() + "\n";

  md += "## Length extrapolation\n\n![Perplexity against evaluation length](extrapolation.png)\n\n";
  std::vector<std::string> columns = {"length"};
  for (const VariantGroup& group : groups) columns.push_back(group.label);
  Table extrapolation(columns);
  for (int64_t length : plan.extrapolation_lengths) {
    std::vector<std::string> row = {std::to_string(length)};
    for (const VariantGroup& group : groups) {
      row.push_back(mean_cell(group.stat([&](const auto& r) { return extrapolation_ppl(r, length); })));
    }
    extrapolation.add_row(std::move(row));
  }
  md += extrapolation.to_markdown() + "\n";

  md += "## Passkey retrieval\n\n![Passkey accuracy by length and depth](passkey.png)\n\n";
  md += fmt::format("Accuracy over {} depths x {} trials per length; only the exact number counts.\n\n",
                    plan.passkey_depths.size(), plan.passkey_trials);
  Table passkey(columns);
  for (size_t li = 0; li < plan.passkey_lengths.size(); ++li) {
    std::vector<std::string> row = {std::to_string(plan.passkey_lengths[li])};
    for (const VariantGroup& group : groups) {
      row.push_back(mean_cell(group.stat([&](const auto& r) { return passkey_accuracy_at_length(r, li); })));
    }
    passkey.add_row(std::move(row));
  }
  md += passkey.to_markdown() + "\n";

  md += "## Query noise ablation\n\n![Perplexity against query noise](noise_perplexity.png)\n"
        "![Passkey accuracy against query noise](noise_passkey.png)\n\n";
  md += fmt::format("Gaussian noise added to the rotated real or imaginary queries only; perplexity at {} tokens, "
                    "passkey accuracy at {} tokens. RoPE has no imaginary heads.\n\n",
                    plan.noise_length, plan.passkey_lengths.front());
  Table noise({"model", "noise on", "stddev", "perplexity", "passkey accuracy"});
  for (const VariantGroup& group : groups) {
    for (NoiseSide side : {NoiseSide::kReal, NoiseSide::kImaginary}) {
      if (side == NoiseSide::kImaginary && group.variant == "rope") continue;
      for (double stddev : plan.noise_stddevs) {
        noise.add_row({group.label, noise_side_name(side), format_number(stddev, 2),
                       mean_cell(group.stat([&](const auto& r) { return noise_ppl(r, side, stddev); })),
                       mean_cell(group.stat([&](const auto& r) { return noise_accuracy(r, side, stddev); }))});
      }
    }
  }
  md += noise.to_markdown() + "\n";

  md += "## Attention\n\n![Mean attention probability by distance](attention_distance.png)\n\n";
  md += fmt::format("Attention probabilities over the first {} tokens of the evaluation text (first seed). The maps "
                    "show query head 0 of the first and last layer; for RoPE++ its real and imaginary head side by "
                    "side.\n\n",
                    plan.attention_tokens);
  for (const std::string& image : attention_images) md += fmt::format("![{}]({})\n", image, image);
  md += "\n";

  md += "## Characteristic curves\n\n![c_re and c_im against distance](characteristic_curves.png)\n\n";
  md += "c_re(dt) = (2/d) Σ cos(θ_n dt) and c_im(dt) = (2/d) Σ sin(θ_n dt), with their means over random Gaussian "
        "q = k rotated by the kernels.\n\n";

  md += "## What the numbers show\n\n";
  for (const std::string& line : findings(results, groups)) md += "- " + line + "\n";
  md += "\nThese are small models trained for minutes on a CPU; the paper's models have hundreds of millions of "
        "parameters and 50B training tokens, so agreement or disagreement here is a hint, not a replication.\n\n";

  md += "## Files\n\n";
  for (const std::string file : {"results.json", "training.csv", "perplexity.csv", "extrapolation.csv",
                                  "passkey.csv", "noise.csv", "attention_distance.csv", "characteristic_curves.csv"}) {
    md += fmt::format("- [{}]({})\n", file, file);
  }
  return md;
}

nlohmann::ordered_json results_json(const StudyResults& results) {
  const StudyPlan& plan = results.plan;
  nlohmann::ordered_json json;
  json["plan"] = {{"preset", plan.preset},
                  {"training_length", plan.training_length},
                  {"batch_size", plan.batch_size},
                  {"steps", plan.steps},
                  {"tokens_per_model", plan.tokens_per_model},
                  {"lr", plan.lr},
                  {"seeds", plan.seeds},
                  {"budget_minutes", plan.budget_minutes},
                  {"variants", plan.variants},
                  {"train_files", plan.train_files},
                  {"eval_file", plan.eval_file},
                  {"window", plan.window},
                  {"stride", plan.stride}};
  json["total_seconds"] = results.total_seconds;
  json["models"] = nlohmann::ordered_json::array();
  for (const StudyModelResult& result : results.models) {
    nlohmann::ordered_json model = {{"variant", result.variant},
                                    {"label", result.label},
                                    {"seed", result.seed},
                                    {"checkpoint", result.checkpoint.string()},
                                    {"parameters", result.parameters},
                                    {"kv_cache_values_per_token", result.kv_cache_values_per_token},
                                    {"final_loss", result.final_loss},
                                    {"validation_loss", result.validation_loss},
                                    {"train_seconds", result.train_seconds},
                                    {"eval_seconds", result.eval_seconds},
                                    {"perplexity", result.perplexity.perplexity()},
                                    {"bits_per_byte", result.perplexity.bits_per_byte()},
                                    {"passkey_mean_accuracy", result.passkey.mean_accuracy()}};
    for (const ExtrapolationPoint& point : result.extrapolation) {
      model["extrapolation"].push_back({{"length", point.length},
                                        {"perplexity", point.all.perplexity()},
                                        {"tail_perplexity", point.tail.perplexity()}});
    }
    for (const NoisePoint& point : result.noise) {
      model["noise"].push_back({{"side", noise_side_name(point.side)},
                                {"stddev", point.stddev},
                                {"perplexity", point.perplexity},
                                {"passkey_accuracy", point.passkey_accuracy}});
    }
    json["models"].push_back(std::move(model));
  }
  return json;
}

}  // namespace

void write_study_report(const fs::path& out, const StudyResults& results) {
  ROPEPP_CHECK(!results.models.empty(), "the study has no results to report");
  const std::vector<VariantGroup> groups = group_by_variant(results);
  write_evaluation_files(out, results, groups);

  std::vector<std::string> attention_images;
  for (const VariantGroup& group : groups) {
    std::map<int, bool> layers;
    for (const HeadMap& map : group.seeds.front()->attention.maps) layers[map.layer] = true;
    for (const auto& [layer, unused] : layers) {
      attention_images.push_back(fmt::format("attention_{}_layer{}.png", group.variant, layer));
    }
  }
  // NaN is not valid JSON; nlohmann writes it as null.
  write_file_atomic(out / "results.json", results_json(results).dump(2) + "\n");
  write_file_atomic(out / "report.md", report_markdown(results, groups, attention_images));
}

}  // namespace ropepp::eval
