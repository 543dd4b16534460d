#include "eval/study.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/inputs.h"
#include "eval/study_results.h"
#include "tokenizer/utf8.h"
#include "train/trainer.h"

namespace ropepp::eval {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Held-out evaluation text is capped at this many bytes: enough for every
// evaluation of the default plan (the longest needs 8 x 512 tokens per chunk).
constexpr int64_t kMaxEvalBytes = int64_t{1} << 18;

// ---- Corpus -------------------------------------------------------------------

// The corpus fetch script: scripts/fetch_corpus.sh under the working folder,
// or under the repository that contains the program (build/ropepp or
// build/<dir>/ropepp). Empty when neither exists.
std::string find_fetch_script(const std::string& binary) {
  const fs::path relative = fs::path("scripts") / "fetch_corpus.sh";
  std::vector<fs::path> candidates = {relative};
  for (fs::path folder = fs::path(binary).parent_path(); !folder.empty() && candidates.size() < 5;
       folder = folder.parent_path()) {
    candidates.push_back(folder / relative);
    if (folder == folder.parent_path()) break;
  }
  for (const fs::path& candidate : candidates) {
    if (fs::is_regular_file(candidate)) return candidate.string();
  }
  return "";
}

// Runs `binary data fetch --out data_dir [--script PATH]` and waits for it.
void run_data_fetch(const std::string& binary, const fs::path& data_dir) {
  const std::string out = data_dir.string();
  const std::string script = find_fetch_script(binary);
  std::vector<std::string> arguments = {binary, "data", "fetch", "--out", out};
  if (!script.empty()) arguments.insert(arguments.end(), {"--script", script});
  spdlog::info("study: fetching the corpus with `{}`", fmt::join(arguments, " "));

  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  const pid_t child = ::fork();
  ROPEPP_CHECK(child >= 0, "cannot start `{} data fetch`: fork failed", binary);
  if (child == 0) {
    ::execv(binary.c_str(), argv.data());
    std::perror("execv");
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ROPEPP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "`{} data fetch --out {}` failed (exit status {}); fix the fetch, or pass --corpus with text files",
               binary, out, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

// Text and JSON-lines files under `root`, in name order, skipping token caches.
std::vector<fs::path> find_corpus_files(const fs::path& root) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string extension = entry.path().extension().string();
    if (entry.path().string().find("token_cache") != std::string::npos) continue;
    if (extension == ".txt" || extension == ".jsonl") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The text of a corpus file: plain text as is, JSON lines as their "text"
// fields separated by blank lines.
std::string read_corpus_text(const fs::path& file) {
  std::ifstream stream(file, std::ios::binary);
  ROPEPP_CHECK(stream.good(), "{}: corpus file not readable", file.string());
  if (file.extension() != ".jsonl") {
    std::ostringstream buffer;
    buffer << stream.rdbuf();
    return buffer.str();
  }
  std::string text, line;
  for (int64_t number = 1; std::getline(stream, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error&) {
      fail("{}: line {} is not valid JSON", file.string(), number);
    }
    ROPEPP_CHECK(json.contains("text") && json["text"].is_string(), "{}: line {} has no string field \"text\"",
                 file.string(), number);
    text += json["text"].get<std::string>();
    text += "\n\n";
  }
  return text;
}

struct CorpusSplit {
  std::vector<std::string> train;
  fs::path eval;
};

// Holds one file out for evaluation: Moby-Dick when present, else the largest
// file. A single file is split instead: its first 85% trains, the rest evaluates.
CorpusSplit split_corpus(const std::vector<fs::path>& files, const fs::path& split_dir) {
  ROPEPP_CHECK(!files.empty(), "the corpus holds no .txt or .jsonl files");
  CorpusSplit split;
  fs::create_directories(split_dir);

  if (files.size() == 1) {
    const std::string text = read_corpus_text(files.front());
    size_t cut = text.size() * 85 / 100;
    const size_t newline = text.find('\n', cut);
    if (newline != std::string::npos) cut = newline + 1;
    ROPEPP_CHECK(cut > 0 && cut < text.size(), "{}: too short to split into training and evaluation text",
                 files.front().string());
    write_file_atomic(split_dir / "train.txt", text.substr(0, cut));
    write_file_atomic(split_dir / "eval.txt", text.substr(cut));
    split.train.push_back((split_dir / "train.txt").string());
    split.eval = split_dir / "eval.txt";
    return split;
  }

  auto held_out = std::find_if(files.begin(), files.end(), [](const fs::path& file) {
    std::string name = file.filename().string();
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    return name.find("moby") != std::string::npos;
  });
  if (held_out == files.end()) {
    held_out = std::max_element(files.begin(), files.end(),
                                [](const fs::path& a, const fs::path& b) { return fs::file_size(a) < fs::file_size(b); });
  }
  for (const fs::path& file : files) {
    if (file != *held_out) split.train.push_back(file.string());
  }

  std::string text = read_corpus_text(*held_out);
  write_file_atomic(split_dir / "eval.txt", text);
  split.eval = split_dir / "eval.txt";
  spdlog::info("study: {} held out for evaluation, {} files for training", held_out->filename().string(),
               split.train.size());
  return split;
}

// ---- Plan -----------------------------------------------------------------------

StudyPlan make_plan(const StudyOptions& options, const Tokenizer& tokenizer) {
  ROPEPP_CHECK(options.training_length >= 16, "invalid training length {}: expected at least 16 tokens",
               options.training_length);
  ROPEPP_CHECK(options.seeds >= 1, "invalid seed count {}: expected >= 1", options.seeds);
  ROPEPP_CHECK(options.budget_minutes > 0, "invalid budget {} minutes: expected > 0", options.budget_minutes);
  ROPEPP_CHECK(options.batch_size >= 1, "invalid batch size {}: expected >= 1", options.batch_size);
  ROPEPP_CHECK(!options.variants.empty(), "the study needs at least one variant");
  for (const std::string& variant : options.variants) parse_variant(variant);

  StudyPlan plan;
  plan.preset = options.preset;
  plan.training_length = options.training_length;
  plan.batch_size = options.batch_size;
  plan.lr = options.lr;
  plan.seeds = options.seeds;
  plan.budget_minutes = options.budget_minutes;
  plan.variants = options.variants;
  const int64_t length = plan.training_length;

  // The RoPE++ paper scores perplexity with window 4096 and stride 512; keep that 8:1 ratio.
  plan.window = length;
  plan.stride = std::max<int64_t>(1, length / 8);
  plan.extrapolation_lengths = doubling_lengths(length, options.quick ? 4 : 8);
  plan.tokens_per_length = options.quick ? 4 * length : 16 * length;
  plan.eval_tokens = options.quick ? 8 * length : 16 * length;

  // Passkey prompts need room for the instructions plus some haystack.
  const int64_t minimum = passkey_fixed_tokens(tokenizer, 5, tokenizer.bos_id().has_value()) + 32;
  for (int64_t multiple : {1, 2, 4}) {
    plan.passkey_lengths.push_back(std::max(minimum, length * multiple));
  }
  plan.passkey_lengths.erase(std::unique(plan.passkey_lengths.begin(), plan.passkey_lengths.end()),
                             plan.passkey_lengths.end());
  if (options.quick) plan.passkey_lengths.resize(std::min<size_t>(2, plan.passkey_lengths.size()));
  plan.passkey_depths = options.quick ? std::vector<double>{0.0, 0.5, 1.0} : std::vector<double>{0, 0.25, 0.5, 0.75, 1};
  plan.passkey_trials = options.quick ? 1 : 2;
  plan.noise_stddevs = options.quick ? std::vector<double>{0.0, 1.0} : std::vector<double>{0.0, 0.5, 1.0, 1.5};
  plan.noise_length = 2 * length;
  plan.noise_tokens = 4 * plan.noise_length;
  plan.attention_tokens = std::min<int64_t>(options.quick ? 48 : 128, length);
  return plan;
}

// Measures training tokens/s with a 3-step run of the slowest variant (EC,
// twice the attention heads). The 3 steps include start-up costs, so the speed
// errs low and the plan errs short.
double measure_training_speed(const train::TrainConfig& base, const StudyPlan& plan, const fs::path& out) {
  train::TrainConfig probe = base;
  probe.variant = std::find(plan.variants.begin(), plan.variants.end(), "ec") != plan.variants.end()
                      ? "ec"
                      : plan.variants.front();
  probe.steps = 3;
  probe.warmup_steps = 1;
  probe.eval_every = 0;
  probe.checkpoint_every = 3;
  probe.out_dir = (out / "calibration").string();
  probe.quiet = true;
  spdlog::info("study: measuring training speed with 3 steps of {}", probe.variant);
  const train::TrainSummary summary = train::run(probe);
  fs::remove_all(out / "calibration");
  return summary.tokens_per_second;
}

// Token positions one model's evaluations process (forward passes only).
double evaluation_cost(const StudyPlan& plan) {
  const double ppl = static_cast<double>(plan.eval_tokens) * plan.window / plan.stride;
  const double extrapolation = static_cast<double>(plan.tokens_per_length) * plan.extrapolation_lengths.size();
  double passkey = 0.0;
  for (int64_t length : plan.passkey_lengths) passkey += static_cast<double>(length);
  passkey *= static_cast<double>(plan.passkey_depths.size() * plan.passkey_trials);
  const double noise_passkey = 2.0 * plan.passkey_trials * static_cast<double>(plan.passkey_lengths.front());
  const double noise = 2.0 * plan.noise_stddevs.size() * (static_cast<double>(plan.noise_tokens) + noise_passkey);
  return ppl + extrapolation + passkey + noise;
}

// Sizes training to 60% of the budget and shrinks the evaluations (down to an
// eighth) to fit the other 40%, from the measured training speed.
// NOTE: evaluation speed is estimated as 2.5x the training speed, because a
// forward pass skips the backward pass. Where that ratio differs, the study
// over- or undershoots its budget.
void fit_plan_to_budget(double tokens_per_second, StudyPlan& plan) {
  const double models = static_cast<double>(plan.variants.size() * plan.seeds);
  const double budget_seconds = plan.budget_minutes * 60.0;
  const double train_seconds = 0.6 * budget_seconds / models;
  const double tokens_per_step = static_cast<double>(plan.batch_size * plan.training_length);
  plan.steps = std::max<int64_t>(10, static_cast<int64_t>(train_seconds * tokens_per_second / tokens_per_step));

  const double eval_tokens_available = 0.4 * budget_seconds / models * 2.5 * tokens_per_second;
  const double scale = std::clamp(eval_tokens_available / evaluation_cost(plan), 0.125, 1.0);
  const int64_t length = plan.training_length;
  plan.eval_tokens = std::max<int64_t>(2 * length, static_cast<int64_t>(plan.eval_tokens * scale));
  plan.tokens_per_length = std::max<int64_t>(length, static_cast<int64_t>(plan.tokens_per_length * scale));
  plan.noise_tokens = std::max<int64_t>(plan.noise_length, static_cast<int64_t>(plan.noise_tokens * scale));
  if (scale < 0.5) plan.passkey_trials = 1;
  spdlog::info("study: {:.0f} training tokens/s measured: {} steps per model, evaluations at {:.0f}% of full size",
               tokens_per_second, plan.steps, 100.0 * scale);
}

// ---- Training ---------------------------------------------------------------------

fs::path run_record_path(const fs::path& run_dir) { return run_dir / "study_run.json"; }

// Trains one model, or with reuse loads the record of an earlier run.
void train_or_reuse(const train::TrainConfig& config, bool reuse, StudyModelResult& result) {
  const fs::path run_dir(config.out_dir);
  const fs::path record = run_record_path(run_dir);
  if (reuse && fs::exists(record)) {
    std::ifstream stream(record);
    const nlohmann::json json = nlohmann::json::parse(stream, nullptr, false);
    ROPEPP_CHECK(!json.is_discarded(), "{}: invalid JSON; delete it to retrain this model", record.string());
    result.checkpoint = json.at("checkpoint").get<std::string>();
    result.final_loss = json.at("final_loss").get<double>();
    result.validation_loss = json.at("validation_loss").get<double>();
    result.train_seconds = json.at("seconds").get<double>();
    result.tokens_per_second = json.at("tokens_per_second").get<double>();
    ROPEPP_CHECK(fs::exists(result.checkpoint / "config.json"),
                 "{}: the recorded checkpoint {} is missing; delete the record to retrain", record.string(),
                 result.checkpoint.string());
    spdlog::info("study: reusing {} from {}", result.label, result.checkpoint.string());
    return;
  }

  spdlog::info("study: training {} (seed {}, {} steps of {} x {} tokens)", result.label, config.seed, config.steps,
               config.batch_size, config.seq_len);
  const train::TrainSummary summary = train::run(config);
  result.checkpoint = summary.last_checkpoint;
  result.final_loss = summary.final_loss;
  result.validation_loss = summary.final_val_loss;
  result.train_seconds = summary.seconds;
  result.tokens_per_second = summary.tokens_per_second;
  const nlohmann::ordered_json json = {{"checkpoint", result.checkpoint.string()},
                                       {"final_loss", result.final_loss},
                                       {"validation_loss", result.validation_loss},
                                       {"seconds", result.train_seconds},
                                       {"tokens_per_second", result.tokens_per_second},
                                       {"steps", summary.steps},
                                       {"tokens", summary.tokens}};
  write_file_atomic(record, json.dump(2) + "\n");
}

// ---- Evaluation -----------------------------------------------------------------------

void evaluate_model(const StudyPlan& plan, const Tokenizer& tokenizer, const std::vector<int32_t>& eval_tokens,
                    StudyModelResult& result) {
  const auto start = Clock::now();
  Model model = Model::load(result.checkpoint);
  const ModelConfig& config = model.config();
  result.parameters = config.parameter_count();
  result.kv_cache_values_per_token =
      int64_t{2} * config.num_hidden_layers * model.head_layout().n_kv_heads * model.head_layout().head_dim;
  result.head_dim = model.head_layout().head_dim;
  result.rope_theta = config.rope_theta;
  const std::optional<int32_t> bos = tokenizer.bos_id();

  spdlog::info("study: evaluating {} (seed {}): sliding-window perplexity", result.label, result.seed);
  std::vector<int32_t> ppl_tokens;
  if (bos) ppl_tokens.push_back(*bos);
  const int64_t ppl_count = std::min<int64_t>(plan.eval_tokens, static_cast<int64_t>(eval_tokens.size()));
  ppl_tokens.insert(ppl_tokens.end(), eval_tokens.begin(), eval_tokens.begin() + ppl_count);
  SlidingWindowOptions window;
  window.window = plan.window;
  window.stride = plan.stride;
  // The byte tokenizer maps one byte to one token, so the byte count is the token count.
  result.perplexity = sliding_window_nll(model, ppl_tokens, ppl_count, window);

  spdlog::info("study: evaluating {}: length extrapolation", result.label);
  ExtrapolationOptions extrapolation;
  extrapolation.lengths = plan.extrapolation_lengths;
  extrapolation.tokens_per_length = plan.tokens_per_length;
  result.extrapolation = evaluate_extrapolation(model, eval_tokens, bos, extrapolation);

  spdlog::info("study: evaluating {}: passkey retrieval", result.label);
  PasskeyOptions passkey;
  passkey.lengths = plan.passkey_lengths;
  passkey.depths = plan.passkey_depths;
  passkey.trials = plan.passkey_trials;
  passkey.seed = static_cast<uint64_t>(result.seed);
  result.passkey = evaluate_passkey(model, tokenizer, eval_tokens, passkey);

  spdlog::info("study: evaluating {}: query noise ablation", result.label);
  NoiseOptions noise;
  noise.stddevs = plan.noise_stddevs;
  noise.seed = static_cast<uint64_t>(result.seed) + 1;
  noise.perplexity_length = plan.noise_length;
  noise.perplexity_tokens = plan.noise_tokens;
  noise.passkey.lengths = {plan.passkey_lengths.front()};
  noise.passkey.depths = {0.25, 0.75};
  noise.passkey.trials = plan.passkey_trials;
  noise.passkey.seed = static_cast<uint64_t>(result.seed);
  result.noise = evaluate_noise(model, tokenizer, eval_tokens, noise);

  spdlog::info("study: evaluating {}: attention maps", result.label);
  std::vector<int32_t> attention_tokens;
  if (bos) attention_tokens.push_back(*bos);
  attention_tokens.insert(attention_tokens.end(), eval_tokens.begin(),
                          eval_tokens.begin() + (plan.attention_tokens - attention_tokens.size()));
  AttentionMapOptions attention;
  attention.layers = {0};
  if (config.num_hidden_layers > 1) attention.layers.push_back(config.num_hidden_layers - 1);
  attention.query_heads = {0};
  result.attention = compute_attention_maps(model, attention_tokens, attention);
  result.eval_seconds = seconds_since(start);
}

}  // namespace

std::string variant_label(const std::string& variant) {
  switch (parse_variant(variant)) {
    case Variant::kVanilla: return "RoPE";
    case Variant::kEH: return "RoPE++EH";
    case Variant::kEC: return "RoPE++EC";
  }
  return variant;
}

std::vector<std::string> study_report_files(const StudyOptions& options) {
  return {"report.md",           "results.json",           "training.csv",           "perplexity.csv",
          "extrapolation.csv",   "extrapolation.png",      "passkey.csv",            "passkey.png",
          "noise.csv",           "noise_perplexity.png",   "noise_passkey.png",      "attention_distance.csv",
          "attention_distance.png", "characteristic_curves.csv", "characteristic_curves.png"};
}

void run_study(const StudyOptions& options) {
  const auto start = Clock::now();
  const fs::path out = options.out;
  fs::create_directories(out);
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer("byte");

  StudyOptions settings = options;
  if (settings.quick) {
    settings.preset = "tiny";
    settings.training_length = std::min<int64_t>(settings.training_length, 64);
    settings.batch_size = std::min<int64_t>(settings.batch_size, 4);
    if (settings.tokens == 0) settings.tokens = 8 * settings.batch_size * settings.training_length;
  }
  StudyResults results;
  results.plan = make_plan(settings, *tokenizer);
  StudyPlan& plan = results.plan;
  const int models = static_cast<int>(plan.variants.size()) * plan.seeds;
  spdlog::info("study: trains {} models ({}, preset {}, training length {}) on real text, then runs every "
               "evaluation; budget about {:.0f} minutes on this machine{}",
               models, fmt::join(plan.variants, ", "), plan.preset, plan.training_length, plan.budget_minutes,
               settings.tokens > 0 ? " (the token count is fixed, so the time may differ)" : "");

  // Corpus.
  std::vector<fs::path> files;
  if (!settings.corpus.empty()) {
    for (const std::string& path : settings.corpus) {
      ROPEPP_CHECK(fs::exists(path), "--corpus {}: file or folder not found", path);
      if (fs::is_directory(path)) {
        const std::vector<fs::path> inside = find_corpus_files(path);
        files.insert(files.end(), inside.begin(), inside.end());
      } else {
        files.emplace_back(path);
      }
    }
  } else {
    const fs::path data_dir = settings.data_dir.empty() ? out / "data" : settings.data_dir;
    const std::string binary =
        settings.ropepp_binary.empty() ? fs::read_symlink("/proc/self/exe").string() : settings.ropepp_binary;
    run_data_fetch(binary, data_dir);
    // The fetch script writes its documents to DATA/corpus.
    files = find_corpus_files(fs::exists(data_dir / "corpus") ? data_dir / "corpus" : data_dir);
  }
  const CorpusSplit split = split_corpus(files, out / "split");
  plan.train_files = split.train;
  plan.eval_file = split.eval.string();
  std::string eval_text = read_corpus_text(split.eval);
  if (static_cast<int64_t>(eval_text.size()) > kMaxEvalBytes) eval_text.resize(kMaxEvalBytes);
  const std::vector<int32_t> eval_tokens = tokenizer->encode(replace_invalid_utf8(eval_text));
  const int64_t needed = std::max(plan.extrapolation_lengths.back(), plan.passkey_lengths.back()) + 1;
  ROPEPP_CHECK(static_cast<int64_t>(eval_tokens.size()) >= needed,
               "the evaluation text {} has {} tokens; the evaluations need at least {}: use a larger corpus",
               split.eval.string(), eval_tokens.size(), needed);

  // Training settings shared by every model: same data, budget and seed.
  train::TrainConfig base;
  base.model = plan.preset;
  base.data = plan.train_files;
  base.tokenizer = "byte";
  base.cache_dir = (out / "token_cache").string();
  base.seq_len = plan.training_length;
  base.min_document_tokens = std::min<int64_t>(512, plan.training_length);
  base.batch_size = plan.batch_size;
  base.schedule = "wsd";
  base.lr = plan.lr;
  base.quiet = false;
  base.keep_last = 1;
  if (settings.tokens > 0) {
    plan.steps = std::max<int64_t>(1, settings.tokens / (plan.batch_size * plan.training_length));
  } else {
    fit_plan_to_budget(measure_training_speed(base, plan, out), plan);
  }
  plan.tokens_per_model = plan.steps * plan.batch_size * plan.training_length;
  base.steps = plan.steps;
  base.warmup_steps = std::max<int64_t>(1, plan.steps / 20);
  base.checkpoint_every = plan.steps;
  base.eval_every = std::max<int64_t>(1, plan.steps / 4);

  for (int seed = 0; seed < plan.seeds; ++seed) {
    for (const std::string& variant : plan.variants) {
      StudyModelResult result;
      result.variant = variant;
      result.label = variant_label(variant);
      result.seed = seed;
      train::TrainConfig config = base;
      config.variant = variant;
      config.seed = static_cast<uint64_t>(seed);
      config.out_dir = (out / "models" / fmt::format("{}-seed{}", variant, seed)).string();
      train_or_reuse(config, settings.reuse, result);
      results.reused = results.reused || settings.reuse;
      results.models.push_back(std::move(result));
      spdlog::info("study: {} of {} models trained, {:.1f} minutes elapsed", results.models.size(), models,
                   seconds_since(start) / 60.0);
    }
  }

  for (StudyModelResult& result : results.models) {
    evaluate_model(plan, *tokenizer, eval_tokens, result);
    spdlog::info("study: {} (seed {}) evaluated in {:.0f} s, {:.1f} minutes elapsed", result.label, result.seed,
                 result.eval_seconds, seconds_since(start) / 60.0);
  }

  CharacteristicOptions curves;
  curves.rope.head_dim = results.models.front().head_dim;
  curves.rope.theta = results.models.front().rope_theta;
  curves.distances = linear_distances(plan.extrapolation_lengths.back(), settings.quick ? 65 : 257);
  curves.samples = settings.quick ? 200 : 2000;
  results.curves = characteristic_curves(curves);

  results.total_seconds = seconds_since(start);
  write_study_report(out, results);
  spdlog::info("study: finished in {:.1f} minutes; report: {}", results.total_seconds / 60.0,
               (out / "report.md").string());
}

}  // namespace ropepp::eval
