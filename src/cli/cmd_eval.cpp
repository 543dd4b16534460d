// `ropepp eval ppl|extrapolate|passkey|noise|attention|curves`: the RoPE++
// paper's evaluations on any checkpoints, each writing CSV (and PNG plots)
// into --out and a table on stdout.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/attention_map.h"
#include "eval/characteristic.h"
#include "eval/inputs.h"
#include "eval/noise.h"
#include "eval/passkey.h"
#include "eval/perplexity.h"
#include "eval/table.h"

namespace ropepp::cli {
namespace {

namespace fs = std::filesystem;
using namespace ropepp::eval;

// Options every model-based evaluation shares.
struct ModelInputs {
  std::vector<std::string> models;
  std::vector<std::string> names;
  std::string tokenizer = "byte";
  std::vector<std::string> texts;
  std::string out = "eval";
  std::string scaling = "none";
  int64_t training_length = 0;  // 0: the first model's max_position_embeddings
};

void add_model_options(CLI::App* command, ModelInputs& inputs, const char* text_help) {
  command->add_option("--model", inputs.models, "Checkpoint folder; repeat to compare models side by side")
      ->required();
  command->add_option("--name", inputs.names, "Display name per --model (default: the folder name)");
  command->add_option("--tokenizer", inputs.tokenizer, "Tokenizer: byte, a tokenizer.json file or its folder")
      ->capture_default_str();
  command->add_option("--text", inputs.texts, text_help)->required();
  command->add_option("--out", inputs.out, "Folder for the CSV and PNG files")->capture_default_str();
  command->add_option("--scaling", inputs.scaling,
                      "Position scaling at inference: none, ntk:THETA, linear:FACTOR, yarn-paper:FACTOR or "
                      "yarn-hf:FACTOR")
      ->capture_default_str();
  command->add_option("--training-length", inputs.training_length,
                      "Training context in tokens (YaRN's original context; default: max_position_embeddings)")
      ->capture_default_str();
}

// Everything an evaluation needs, loaded once.
struct Loaded {
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<NamedModel> models;
  std::vector<TextDocument> documents;
  int64_t training_length = 0;
  InferenceScaling scaling;
};

Loaded load_inputs(const ModelInputs& inputs) {
  Loaded loaded;
  loaded.tokenizer = load_tokenizer(inputs.tokenizer);
  loaded.models = load_models(inputs.models, inputs.names);
  for (const NamedModel& model : loaded.models) check_tokenizer_fits(*loaded.tokenizer, model);
  loaded.documents = read_text_documents(inputs.texts, *loaded.tokenizer);
  loaded.training_length = inputs.training_length > 0 ? inputs.training_length
                                                       : loaded.models.front().model.config().max_position_embeddings;
  loaded.scaling = parse_inference_scaling(inputs.scaling, loaded.training_length);
  fs::create_directories(inputs.out);
  return loaded;
}

ForwardOptions forward_options(const Loaded& loaded, const NamedModel& model) {
  ForwardOptions options;
  options.rope = loaded.scaling.apply(model.model.config());
  return options;
}

void print_table(const std::string& title, const Table& table) {
  std::printf("\n%s\n\n%s", title.c_str(), table.to_markdown().c_str());
  std::fflush(stdout);
}

// ---- ppl ---------------------------------------------------------------------

struct PerplexityCommand {
  ModelInputs inputs;
  int64_t window = 4096;
  int64_t stride = 512;
  bool no_bos = false;
};

int run_perplexity(const PerplexityCommand& command) {
  Loaded loaded = load_inputs(command.inputs);
  const std::optional<int32_t> bos = command.no_bos ? std::nullopt : loaded.tokenizer->bos_id();
  Table table({"model", "text", "tokens", "perplexity", "bits_per_byte"});
  nlohmann::ordered_json json = nlohmann::ordered_json::array();
  for (NamedModel& model : loaded.models) {
    SlidingWindowOptions options;
    options.window = command.window;
    options.stride = command.stride;
    options.forward = forward_options(loaded, model);
    NllSum total;
    for (const TextDocument& document : loaded.documents) {
      std::vector<int32_t> tokens;
      if (bos) tokens.push_back(*bos);
      tokens.insert(tokens.end(), document.tokens.begin(), document.tokens.end());
      spdlog::info("{}: sliding-window perplexity of {} ({} tokens)", model.name, document.path.string(),
                   tokens.size());
      // Without BOS the first token is not scored, so bits per byte would be
      // slightly optimistic; the byte count stays that of the whole file.
      const NllSum sum = sliding_window_nll(model.model, tokens, document.bytes, options);
      total.add(sum);
      table.add_row({model.name, document.path.filename().string(), std::to_string(sum.targets),
                     format_number(sum.perplexity()), format_number(sum.bits_per_byte())});
      json.push_back({{"model", model.name}, {"text", document.path.string()}, {"targets", sum.targets},
                      {"nll_sum", sum.nll}, {"bytes", sum.bytes}, {"perplexity", sum.perplexity()},
                      {"bits_per_byte", sum.bits_per_byte()}});
    }
    if (loaded.documents.size() > 1) {
      table.add_row({model.name, "(all)", std::to_string(total.targets), format_number(total.perplexity()),
                     format_number(total.bits_per_byte())});
    }
  }
  const fs::path out(command.inputs.out);
  table.write_csv(out / "perplexity.csv");
  write_file_atomic(out / "perplexity.json", json.dump(2) + "\n");
  print_table(fmt::format("Sliding-window perplexity (window {}, stride {}, scaling {})", command.window,
                          command.stride, loaded.scaling.spec),
              table);
  spdlog::info("wrote {} and perplexity.json", (out / "perplexity.csv").string());
  return 0;
}

// ---- extrapolate ---------------------------------------------------------------

struct ExtrapolateCommand {
  ModelInputs inputs;
  std::vector<std::string> scalings;
  std::string lengths;
  int64_t max_multiple = 8;
  int64_t tokens_per_length = 16384;
};

int run_extrapolate(const ExtrapolateCommand& command) {
  Loaded loaded = load_inputs(command.inputs);
  const std::vector<int32_t> text = concatenate_tokens(loaded.documents);
  ExtrapolationOptions options;
  options.lengths = command.lengths.empty() ? doubling_lengths(loaded.training_length, command.max_multiple)
                                            : parse_integer_list(command.lengths, "--lengths");
  options.tokens_per_length = command.tokens_per_length;
  std::vector<std::string> specs = command.scalings;
  if (specs.empty()) specs.push_back(command.inputs.scaling);

  std::vector<ExtrapolationCurve> curves;
  for (NamedModel& model : loaded.models) {
    for (const std::string& spec : specs) {
      const InferenceScaling scaling = parse_inference_scaling(spec, loaded.training_length);
      options.forward.rope = scaling.apply(model.model.config());
      spdlog::info("{}: length extrapolation with scaling {}", model.name, spec);
      const std::string name = spec == "none" ? model.name : model.name + " + " + spec;
      curves.push_back({name, evaluate_extrapolation(model.model, text, loaded.tokenizer->bos_id(), options)});
    }
  }
  const fs::path out(command.inputs.out);
  write_extrapolation_csv(out / "extrapolation.csv", curves);
  write_extrapolation_plot(out / "extrapolation.png", curves, loaded.training_length);

  Table table({"curve", "length", "perplexity", "tail_perplexity"});
  for (const ExtrapolationCurve& curve : curves) {
    for (const ExtrapolationPoint& point : curve.points) {
      table.add_row({curve.name, std::to_string(point.length), format_number(point.all.perplexity()),
                     format_number(point.tail.perplexity())});
    }
  }
  print_table(fmt::format("Perplexity by evaluation length (training length {})", loaded.training_length), table);
  spdlog::info("wrote {} and extrapolation.png", (out / "extrapolation.csv").string());
  return 0;
}

// ---- passkey ---------------------------------------------------------------------

struct PasskeyCommand {
  ModelInputs inputs;
  std::string lengths;
  std::string depths = "0,0.25,0.5,0.75,1";
  int trials = 5;
  int digits = 5;
  uint64_t seed = 0;
};

int run_passkey(const PasskeyCommand& command) {
  Loaded loaded = load_inputs(command.inputs);
  const std::vector<int32_t> haystack = concatenate_tokens(loaded.documents);
  PasskeyOptions options;
  options.lengths = command.lengths.empty() ? doubling_lengths(loaded.training_length, 4)
                                            : parse_integer_list(command.lengths, "--lengths");
  options.depths = parse_number_list(command.depths, "--depths");
  options.trials = command.trials;
  options.digits = command.digits;
  options.seed = command.seed;

  std::vector<std::string> names;
  std::vector<PasskeyGrid> grids;
  Table table({"model", "mean_accuracy"});
  for (NamedModel& model : loaded.models) {
    options.forward = forward_options(loaded, model);
    spdlog::info("{}: passkey retrieval", model.name);
    grids.push_back(evaluate_passkey(model.model, *loaded.tokenizer, haystack, options));
    names.push_back(model.name);
    table.add_row({model.name, format_number(grids.back().mean_accuracy(), 3)});
  }
  const fs::path out(command.inputs.out);
  write_passkey_csv(out / "passkey.csv", names, grids);
  write_passkey_heatmaps(out / "passkey.png", names, grids);
  print_table("Passkey retrieval accuracy (mean over lengths and depths)", table);
  spdlog::info("wrote {} and passkey.png", (out / "passkey.csv").string());
  return 0;
}

// ---- noise ---------------------------------------------------------------------

struct NoiseCommand {
  ModelInputs inputs;
  std::string stddevs = "0,0.25,0.5,0.75,1,1.25,1.5";
  int64_t length = 0;  // 0: twice the training length
  int64_t tokens = 16384;
  std::string passkey_lengths;
  std::string passkey_depths = "0.1,0.5,0.9";
  int passkey_trials = 3;
  uint64_t seed = 0;
};

int run_noise(const NoiseCommand& command) {
  Loaded loaded = load_inputs(command.inputs);
  const std::vector<int32_t> text = concatenate_tokens(loaded.documents);
  NoiseOptions options;
  options.stddevs = parse_number_list(command.stddevs, "--stddevs");
  options.seed = command.seed;
  options.perplexity_length = command.length > 0 ? command.length : 2 * loaded.training_length;
  options.perplexity_tokens = command.tokens;
  if (!command.passkey_lengths.empty()) {
    options.passkey.lengths = parse_integer_list(command.passkey_lengths, "--passkey-lengths");
    options.passkey.depths = parse_number_list(command.passkey_depths, "--passkey-depths");
    options.passkey.trials = command.passkey_trials;
    options.passkey.seed = command.seed;
  }
  std::vector<NoiseCurves> curves;
  for (NamedModel& model : loaded.models) {
    options.forward = forward_options(loaded, model);
    curves.push_back({model.name, evaluate_noise(model.model, *loaded.tokenizer, text, options)});
  }
  const fs::path out(command.inputs.out);
  write_noise_csv(out / "noise.csv", curves);
  write_noise_plots(out / "noise_perplexity.png", out / "noise_passkey.png", curves, options.perplexity_length);

  Table table({"model", "side", "stddev", "perplexity", "passkey_accuracy"});
  for (const NoiseCurves& curve : curves) {
    for (const NoisePoint& point : curve.points) {
      table.add_row({curve.model_name, noise_side_name(point.side), format_number(point.stddev, 3),
                     format_number(point.perplexity), format_number(point.passkey_accuracy, 3)});
    }
  }
  print_table(fmt::format("Query noise ablation (perplexity at {} tokens)", options.perplexity_length), table);
  spdlog::info("wrote {} and the noise plots", (out / "noise.csv").string());
  return 0;
}

// ---- attention ---------------------------------------------------------------------

struct AttentionCommand {
  ModelInputs inputs;
  int64_t tokens = 128;
  std::vector<int> layers;
  std::vector<int> heads;
};

int run_attention(const AttentionCommand& command) {
  Loaded loaded = load_inputs(command.inputs);
  std::vector<int32_t> text = concatenate_tokens(loaded.documents);
  const int64_t n_text = std::min<int64_t>(static_cast<int64_t>(text.size()), command.tokens - 1);
  ROPEPP_CHECK(n_text >= 1, "--tokens {}: expected at least 2", command.tokens);
  std::vector<int32_t> tokens;
  if (loaded.tokenizer->bos_id()) tokens.push_back(*loaded.tokenizer->bos_id());
  tokens.insert(tokens.end(), text.begin(), text.begin() + n_text);

  AttentionMapOptions options;
  options.layers = command.layers;
  options.query_heads = command.heads;
  const fs::path out(command.inputs.out);
  std::vector<AttentionMaps> all_maps;
  all_maps.reserve(loaded.models.size());
  for (NamedModel& model : loaded.models) {
    options.forward = forward_options(loaded, model);
    spdlog::info("{}: attention maps over {} tokens", model.name, tokens.size());
    all_maps.push_back(compute_attention_maps(model.model, tokens, options));
    for (const fs::path& file : write_attention_heatmaps(out, "attention_" + file_safe_name(model.name), model.name, all_maps.back())) {
      spdlog::info("wrote {}", file.string());
    }
  }
  std::vector<DistanceProfile> profiles;
  for (size_t m = 0; m < loaded.models.size(); ++m) profiles.push_back({loaded.models[m].name, &all_maps[m]});
  write_distance_csv(out / "attention_distance.csv", profiles);
  write_distance_plot(out / "attention_distance.png", profiles);
  spdlog::info("wrote {} and attention_distance.png", (out / "attention_distance.csv").string());
  return 0;
}

// ---- curves ---------------------------------------------------------------------

struct CurvesCommand {
  int head_dim = 128;
  double rope_theta = 10000.0;
  int64_t max_distance = 4096;
  int64_t points = 513;
  int64_t samples = 2000;
  double correlation = 1.0;
  uint64_t seed = 0;
  std::string out = "eval";
};

int run_curves(const CurvesCommand& command) {
  CharacteristicOptions options;
  options.rope.head_dim = command.head_dim;
  options.rope.theta = command.rope_theta;
  options.distances = linear_distances(command.max_distance, command.points);
  options.samples = command.samples;
  options.correlation = command.correlation;
  options.seed = command.seed;
  const CharacteristicCurves curves = characteristic_curves(options);
  fs::create_directories(command.out);
  const fs::path out(command.out);
  write_characteristic_csv(out / "characteristic_curves.csv", curves);
  write_characteristic_plot(out / "characteristic_curves.png", curves, options.rope);
  spdlog::info("wrote {} and characteristic_curves.png", (out / "characteristic_curves.csv").string());
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, Commands& commands) {
  CLI::App* eval = app.add_subcommand("eval", "Evaluate checkpoints as in the RoPE++ paper (tables, CSV and plots)");
  eval->require_subcommand(1);

  auto perplexity = std::make_shared<PerplexityCommand>();
  CLI::App* ppl = eval->add_subcommand("ppl", "Sliding-window perplexity and bits per byte over text files");
  add_model_options(ppl, perplexity->inputs, "Text file or folder; each file is scored separately");
  ppl->add_option("--window", perplexity->window, "Tokens per forward pass")->capture_default_str();
  ppl->add_option("--stride", perplexity->stride, "New tokens scored per window after the first (< window)")
      ->capture_default_str();
  ppl->add_flag("--no-bos", perplexity->no_bos, "Do not prepend BOS (the first token is then not scored)");
  commands.push_back({ppl, [perplexity] { return run_perplexity(*perplexity); }});

  auto extrapolate = std::make_shared<ExtrapolateCommand>();
  CLI::App* ext = eval->add_subcommand("extrapolate", "Perplexity at lengths from half to many times the training length");
  add_model_options(ext, extrapolate->inputs, "Text file or folder, read as one token stream");
  ext->add_option("--scalings", extrapolate->scalings,
                  "Scalings to compare, one curve per model and scaling (e.g. none linear:4 ntk:500000)");
  ext->add_option("--lengths", extrapolate->lengths, "Comma-separated lengths in tokens (default: L/2, L, 2L, ...)");
  ext->add_option("--max-multiple", extrapolate->max_multiple, "Longest default length, in training lengths")
      ->capture_default_str();
  ext->add_option("--tokens-per-length", extrapolate->tokens_per_length,
                  "Tokens scored per length (chunks = max(1, this / length))")
      ->capture_default_str();
  commands.push_back({ext, [extrapolate] { return run_extrapolate(*extrapolate); }});

  auto passkey = std::make_shared<PasskeyCommand>();
  CLI::App* pk = eval->add_subcommand("passkey", "Passkey retrieval accuracy as a length x depth grid");
  add_model_options(pk, passkey->inputs, "Haystack text file or folder");
  pk->add_option("--lengths", passkey->lengths, "Comma-separated prompt lengths in tokens (default: L/2 .. 4L)");
  pk->add_option("--depths", passkey->depths, "Comma-separated needle depths in [0, 1]")->capture_default_str();
  pk->add_option("--trials", passkey->trials, "Prompts per cell")->capture_default_str();
  pk->add_option("--digits", passkey->digits, "Digits of the passkey")->capture_default_str();
  pk->add_option("--seed", passkey->seed, "Seed of passkeys and haystack offsets")->capture_default_str();
  commands.push_back({pk, [passkey] { return run_passkey(*passkey); }});

  auto noise = std::make_shared<NoiseCommand>();
  CLI::App* nz = eval->add_subcommand("noise", "Gaussian noise on the real or the imaginary queries only");
  add_model_options(nz, noise->inputs, "Text file or folder (perplexity text and passkey haystack)");
  nz->add_option("--stddevs", noise->stddevs, "Comma-separated noise standard deviations")->capture_default_str();
  nz->add_option("--length", noise->length, "Perplexity length in tokens (0: twice the training length)")
      ->capture_default_str();
  nz->add_option("--tokens", noise->tokens, "Tokens scored per noise level")->capture_default_str();
  nz->add_option("--passkey-lengths", noise->passkey_lengths, "Comma-separated passkey lengths (empty: no passkey)");
  nz->add_option("--passkey-depths", noise->passkey_depths, "Comma-separated passkey depths")->capture_default_str();
  nz->add_option("--passkey-trials", noise->passkey_trials, "Passkey prompts per cell")->capture_default_str();
  nz->add_option("--seed", noise->seed, "Seed of the noise and the passkeys")->capture_default_str();
  commands.push_back({nz, [noise] { return run_noise(*noise); }});

  auto attention = std::make_shared<AttentionCommand>();
  CLI::App* at = eval->add_subcommand("attention", "Attention maps of real and imaginary heads, mass by distance");
  add_model_options(at, attention->inputs, "Text file or folder; its first tokens are used");
  at->add_option("--tokens", attention->tokens, "Tokens to attend over, BOS included (a few hundred at most)")
      ->capture_default_str();
  at->add_option("--layers", attention->layers, "Layers to draw (default: all)");
  at->add_option("--heads", attention->heads, "Query heads to draw; RoPE++ draws both heads of each (default: 0)");
  commands.push_back({at, [attention] { return run_attention(*attention); }});

  auto curves = std::make_shared<CurvesCommand>();
  CLI::App* cc = eval->add_subcommand("curves", "Characteristic curves c_re(dt), c_im(dt) and random q/k means");
  cc->add_option("--head-dim", curves->head_dim, "Head size d (even)")->capture_default_str();
  cc->add_option("--rope-theta", curves->rope_theta, "RoPE base")->capture_default_str();
  cc->add_option("--max-distance", curves->max_distance, "Largest distance in tokens")->capture_default_str();
  cc->add_option("--points", curves->points, "Distances, evenly spaced from 0")->capture_default_str();
  cc->add_option("--samples", curves->samples, "Random (q, k) pairs per distance; 0 skips the empirical curves")
      ->capture_default_str();
  cc->add_option("--correlation", curves->correlation, "Correlation of k with q, in (0, 1]")->capture_default_str();
  cc->add_option("--seed", curves->seed, "Seed of the random q and k")->capture_default_str();
  cc->add_option("--out", curves->out, "Folder for the CSV and PNG")->capture_default_str();
  commands.push_back({cc, [curves] { return run_curves(*curves); }});
}

}  // namespace ropepp::cli
