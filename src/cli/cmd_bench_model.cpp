// `ropepp bench model`: whole-model prefill and decode speed against the
// machine's ceilings measured in the same run, and optionally against the
// RoPE++ authors' formulation in PyTorch (bench/torch_model.py) on the same
// checkpoint.
//
// Prefill is judged by achieved GFLOP/s over the GEMM ceiling of the weight
// precision. Decode is memory-bound, so each token is judged against its
// bytes-per-token floor: every weight matrix and the KV cache read once, over
// the measured read bandwidth.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "bench/bench_machine.h"
#include "bench/torch_peer.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "model/model.h"
#include "model/presets.h"

namespace ropepp::cli {
namespace {

struct BenchModelOptions {
  std::string presets = "tiny,small,376m";
  std::string variants = "rope,eh,ec";
  std::string weights = "f32,bf16";
  int prompt_tokens = 512;
  int decode_tokens = 16;  // per round
  int rounds = 5;
  int repeats = 3;
  bool torch = false;
  std::string torch_script = "bench/torch_model.py";
  std::string work_dir;
  std::string json_path;
  std::string csv_path;
  bool quick = false;
};

// One decode round: ropepp's steps, then PyTorch's, with the read bandwidth
// measured before, between and after.
struct DecodeRound {
  double seconds = 0.0;        // ropepp, median per step
  double torch_seconds = 0.0;  // 0 without --torch
  double read_gbs[3] = {0.0, 0.0, 0.0};
  bool matched = false;        // the three bandwidths within kMatchedBandwidth
};

// Rounds whose bandwidth moved by more than this factor are left out of the
// comparison with PyTorch: one side would have run on a faster machine.
constexpr double kMatchedBandwidth = 1.15;

struct ModelResult {
  std::string preset;
  std::string variant;
  std::string weights;
  int64_t parameters = 0;
  int prompt_tokens = 0;
  double prefill_seconds = 0.0;
  double prefill_gflops = 0.0;
  double gemm_ceiling_gflops = 0.0;
  double decode_seconds = 0.0;  // median per token over the rounds
  double decode_bytes = 0.0;    // bytes read per token (weights + KV cache)
  double read_gbs = 0.0;        // median read bandwidth around ropepp's rounds
  double decode_floor_seconds = 0.0;   // decode_bytes over read_gbs
  double decode_floor_fraction = 0.0;  // median over rounds of floor / time, each at its own bandwidth
  double torch_prefill_seconds = 0.0;  // 0 when not measured
  double torch_decode_seconds = 0.0;   // median over the matched rounds
  double decode_speedup = 0.0;         // median over the matched rounds of PyTorch's time / ropepp's
  int rounds_matched = 0;
  std::vector<DecodeRound> rounds;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

// Multiply-adds of the layer projections per token. The embedding lookup is
// not a product, and the LM head is counted separately.
int64_t layer_matmul_parameters(const ModelConfig& config) {
  const LayerShapes shapes = LayerShapes::from_config(config);
  const int64_t attention = shapes.hidden * (shapes.q_rows + 2 * shapes.kv_rows) + shapes.attn_width * shapes.hidden;
  const int64_t mlp = 3 * shapes.hidden * shapes.intermediate;
  return config.num_hidden_layers * (attention + mlp);
}

// FLOPs of a causal prefill of n tokens with logits for the last token only.
// A multiply-add counts 2, and attention counts only unmasked (query, key)
// pairs, with QK^T and PV each 2 * head_dim per pair.
double prefill_flops(const ModelConfig& config, int64_t n) {
  const HeadLayout layout = config.head_layout();
  const double pairs = 0.5 * static_cast<double>(n) * (n + 1);
  const double attention = 4.0 * pairs * layout.head_dim * layout.n_attention_heads() * config.num_hidden_layers;
  const double matmuls = 2.0 * static_cast<double>(n) * layer_matmul_parameters(config);
  const double lm_head = 2.0 * static_cast<double>(config.vocab_size) * config.hidden_size;
  return matmuls + attention + lm_head;
}

// Bytes one decode step must read: every weight matrix once (LM head
// included), the norms, one embedding row, and the keys and values of a cache
// holding `cache_tokens` tokens.
double decode_bytes(const ModelConfig& config, MatmulPrecision precision, double cache_tokens, CacheType cache) {
  const double weight_size = precision == MatmulPrecision::kBF16 ? 2.0 : 4.0;
  const double weights = weight_size * (layer_matmul_parameters(config) +
                                        static_cast<double>(config.vocab_size) * config.hidden_size);
  const double norms = 4.0 * config.hidden_size * (2.0 * config.num_hidden_layers + 1.0);
  const HeadLayout layout = config.head_layout();
  const double cache_size = cache == CacheType::kBF16 ? 2.0 : 4.0;
  const double kv = 2.0 * config.num_hidden_layers * layout.n_kv_heads * layout.head_dim * cache_tokens * cache_size;
  return weights + norms + 4.0 * config.hidden_size + kv;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The folder of the checkpoint given to PyTorch: unique to this process, so a
// --work-dir that already contains files is never read from or deleted.
std::filesystem::path torch_checkpoint(const std::filesystem::path& work_dir, const std::string& preset,
                                       const std::string& variant) {
  return work_dir / fmt::format("ropepp-bench-{}-{}-{}", preset, variant, ::getpid());
}

// Writes the weights for PyTorch and starts bench/torch_model.py as a peer,
// which loads them and times its prefill.
std::unique_ptr<bench::TorchPeer> start_torch(const Model& model, const BenchModelOptions& options,
                                              const std::filesystem::path& work_dir, ModelResult& result) {
  const bool bf16 = model.options().weights_precision == MatmulPrecision::kBF16;
  const std::filesystem::path checkpoint = torch_checkpoint(work_dir, result.preset, result.variant);
  if (!std::filesystem::exists(checkpoint / "config.json")) model.weights().save(checkpoint, DType::kF32);
  const std::vector<std::string> argv = {"/usr/bin/python3",
                                         options.torch_script,
                                         "--model",
                                         checkpoint.string(),
                                         "--dtype",
                                         bf16 ? "bf16" : "f32",
                                         "--prompt-tokens",
                                         std::to_string(options.prompt_tokens),
                                         "--repeats",
                                         std::to_string(options.repeats),
                                         "--threads",
                                         std::to_string(num_threads()),
                                         "--peer"};
  // With Debian's default pthread OpenBLAS, torch's threads and OpenBLAS's compete
  // for the cores, so the OpenMP build is loaded instead.
  const std::string library_path = "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp";
  spdlog::info("running {} {}", library_path, fmt::join(argv, " "));
  try {
    auto peer = std::make_unique<bench::TorchPeer>(argv, std::vector<std::string>{library_path});
    result.torch_prefill_seconds = peer->prefill_seconds();
    return peer;
  } catch (const std::exception& error) {
    spdlog::error("the PyTorch benchmark failed ({}); its columns stay empty", error.what());
    return nullptr;
  }
}

void measure_prefill(Model& model, const BenchModelOptions& options, KVCache& cache, ModelResult& result) {
  const ModelConfig& config = model.config();
  std::vector<int32_t> tokens(static_cast<size_t>(options.prompt_tokens));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919 + 13) % config.vocab_size);
  std::vector<float> logits(static_cast<size_t>(config.vocab_size));

  ForwardInput input;
  input.tokens = tokens;
  ForwardOptions forward_options;
  forward_options.logits_start = options.prompt_tokens - 1;
  result.prefill_seconds = bench::median_seconds(options.repeats, [&] {
    cache.clear();
    model.forward(input, logits.data(), forward_options, &cache);
  });
  result.prefill_gflops = prefill_flops(config, options.prompt_tokens) / result.prefill_seconds * 1e-9;
}

// Decode after the prompt in rounds of options.decode_tokens steps, the median
// step time of a round being its time per token. This machine's read bandwidth
// jumps between about 35 and 63 GB/s within seconds, so each round measures it
// before ropepp's steps, between them and PyTorch's, and after. A round is
// judged against the higher bandwidth around ropepp's steps (a stricter floor,
// never a flattering one), and compared with PyTorch only when all three
// measurements agree within kMatchedBandwidth.
void measure_decode(Model& model, const BenchModelOptions& options, KVCache& cache, bench::TorchPeer* torch,
                    ModelResult& result) {
  const ModelConfig& config = model.config();
  std::vector<float> logits(static_cast<size_t>(config.vocab_size));
  const int64_t read_bytes = options.quick ? (int64_t{8} << 20) : (int64_t{256} << 20);
  const double mean_cache = options.prompt_tokens + 0.5 * options.rounds * options.decode_tokens;
  result.decode_bytes = decode_bytes(config, model.options().weights_precision, mean_cache, CacheType::kF32);

  int32_t token = 1;
  bool torch_failed = false;
  for (int round = 0; round < options.rounds; ++round) {
    DecodeRound r;
    r.read_gbs[0] = bench::measure_read_gbs(read_bytes, 3);
    std::vector<double> steps;
    for (int i = 0; i < options.decode_tokens; ++i) {
      const auto start = std::chrono::steady_clock::now();
      model.decode(token, cache, logits.data());
      steps.push_back(seconds_since(start));
      token = static_cast<int32_t>((token * 31 + 7) % config.vocab_size);
    }
    r.seconds = bench::median(steps);
    r.read_gbs[1] = bench::measure_read_gbs(read_bytes, 3);
    if (torch != nullptr) {
      try {
        r.torch_seconds = torch->decode(options.decode_tokens);
      } catch (const Error& error) {
        spdlog::error("the PyTorch peer failed during decode ({}); its decode columns stay empty", error.what());
        torch_failed = true;
        torch = nullptr;
      }
    }
    if (torch != nullptr) {
      r.read_gbs[2] = bench::measure_read_gbs(read_bytes, 3);
      const auto [low, high] = std::minmax({r.read_gbs[0], r.read_gbs[1], r.read_gbs[2]});
      r.matched = high <= kMatchedBandwidth * low;
    }
    result.rounds.push_back(r);
  }

  std::vector<double> times, bandwidths, fractions, torch_times, speedups;
  for (const DecodeRound& r : result.rounds) {
    const double bandwidth = std::max(r.read_gbs[0], r.read_gbs[1]);
    times.push_back(r.seconds);
    bandwidths.push_back(bandwidth);
    fractions.push_back(result.decode_bytes / (bandwidth * 1e9) / r.seconds);
    if (r.matched) {
      torch_times.push_back(r.torch_seconds);
      speedups.push_back(r.torch_seconds / r.seconds);
    }
  }
  result.decode_seconds = bench::median(times);
  result.read_gbs = bench::median(bandwidths);
  result.decode_floor_seconds = result.decode_bytes / (result.read_gbs * 1e9);
  result.decode_floor_fraction = bench::median(fractions);
  result.rounds_matched = static_cast<int>(speedups.size());
  if (torch_failed) {
    result.rounds_matched = 0;
    return;
  }
  if (torch != nullptr && speedups.empty()) {
    spdlog::warn("{} {} {}: the bandwidth moved in every decode round; comparing PyTorch over all rounds",
                 result.preset, result.variant, result.weights);
    for (const DecodeRound& r : result.rounds) {
      torch_times.push_back(r.torch_seconds);
      speedups.push_back(r.torch_seconds / r.seconds);
    }
  }
  if (!speedups.empty()) {
    result.torch_decode_seconds = bench::median(torch_times);
    result.decode_speedup = bench::median(speedups);
  }
}

std::string format_table(const std::vector<ModelResult>& results) {
  std::string text =
      fmt::format("{:<6} {:<9} {:<5} {:>8} | {:>10} {:>8} {:>7} {:>8} | {:>9} {:>6} {:>9} {:>7} {:>8} {:>6}\n",
                  "model", "variant", "wts", "params", "prefill/s", "GFLOP/s", "%gemm", "vs torch", "decode/s", "GB/s",
                  "floor/s", "%floor", "vs torch", "rounds");
  for (const ModelResult& r : results) {
    const double prefill_rate = r.prompt_tokens / r.prefill_seconds;
    const double decode_rate = 1.0 / r.decode_seconds;
    const std::string prefill_speedup =
        r.torch_prefill_seconds > 0 ? fmt::format("{:.2f}x", r.torch_prefill_seconds / r.prefill_seconds) : "-";
    const std::string decode_speedup = r.decode_speedup > 0 ? fmt::format("{:.2f}x", r.decode_speedup) : "-";
    const std::string matched =
        r.decode_speedup > 0 ? fmt::format("{}/{}", r.rounds_matched, r.rounds.size()) : "-";
    text += fmt::format("{:<6} {:<9} {:<5} {:>7.1f}M | {:>10.1f} {:>8.1f} {:>6.1f}% {:>8} | {:>9.1f} {:>6.1f} "
                        "{:>9.1f} {:>6.1f}% {:>8} {:>6}\n",
                        r.preset, r.variant, r.weights, r.parameters / 1e6, prefill_rate, r.prefill_gflops,
                        100.0 * r.prefill_gflops / r.gemm_ceiling_gflops, prefill_speedup, decode_rate, r.read_gbs,
                        1.0 / r.decode_floor_seconds, 100.0 * r.decode_floor_fraction, decode_speedup, matched);
  }
  return text;
}

nlohmann::ordered_json to_json(const ModelResult& r) {
  nlohmann::ordered_json json;
  json["preset"] = r.preset;
  json["variant"] = r.variant;
  json["weights"] = r.weights;
  json["parameters"] = r.parameters;
  json["prompt_tokens"] = r.prompt_tokens;
  json["prefill_seconds"] = r.prefill_seconds;
  json["prefill_tokens_per_second"] = r.prompt_tokens / r.prefill_seconds;
  json["prefill_gflops"] = r.prefill_gflops;
  json["gemm_ceiling_gflops"] = r.gemm_ceiling_gflops;
  json["prefill_fraction_of_ceiling"] = r.prefill_gflops / r.gemm_ceiling_gflops;
  json["decode_seconds_per_token"] = r.decode_seconds;
  json["decode_tokens_per_second"] = 1.0 / r.decode_seconds;
  json["decode_bytes_per_token"] = r.decode_bytes;
  json["read_gbs"] = r.read_gbs;
  json["decode_floor_seconds"] = r.decode_floor_seconds;
  json["decode_fraction_of_floor"] = r.decode_floor_fraction;
  json["decode_rounds"] = nlohmann::ordered_json::array();
  for (const DecodeRound& round : r.rounds) {
    nlohmann::ordered_json item = {{"seconds_per_token", round.seconds},
                                   {"read_gbs", {round.read_gbs[0], round.read_gbs[1]}}};
    if (round.torch_seconds > 0) {
      item["torch_seconds_per_token"] = round.torch_seconds;
      item["read_gbs"].push_back(round.read_gbs[2]);
      item["matched"] = round.matched;
    }
    json["decode_rounds"].push_back(item);
  }
  if (r.torch_prefill_seconds > 0) {
    // The maximum speed-up over PyTorch that any implementation could reach:
    // the whole prefill at the GEMM ceiling, and the decode at the bandwidth
    // floor (an estimate for decode, whose floor uses the median bandwidth).
    json["torch_prefill_seconds"] = r.torch_prefill_seconds;
    json["prefill_speedup_vs_torch"] = r.torch_prefill_seconds / r.prefill_seconds;
    json["prefill_speedup_bound_vs_torch"] =
        r.torch_prefill_seconds * r.gemm_ceiling_gflops / (r.prefill_gflops * r.prefill_seconds);
  }
  if (r.decode_speedup > 0) {
    json["torch_decode_seconds_per_token"] = r.torch_decode_seconds;
    json["decode_speedup_vs_torch"] = r.decode_speedup;
    json["decode_rounds_matched"] = r.rounds_matched;
    json["decode_speedup_bound_vs_torch"] = r.torch_decode_seconds / r.decode_floor_seconds;
  }
  return json;
}

std::string to_csv(const std::vector<ModelResult>& results) {
  std::string text =
      "preset,variant,weights,parameters,prompt_tokens,prefill_seconds,prefill_gflops,gemm_ceiling_gflops,"
      "decode_seconds_per_token,decode_bytes_per_token,read_gbs,decode_floor_seconds,torch_prefill_seconds,"
      "torch_decode_seconds_per_token,decode_speedup_vs_torch,decode_rounds_matched\n";
  for (const ModelResult& r : results) {
    text += fmt::format("{},{},{},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{}\n",
                        r.preset, r.variant, r.weights, r.parameters, r.prompt_tokens, r.prefill_seconds,
                        r.prefill_gflops, r.gemm_ceiling_gflops, r.decode_seconds, r.decode_bytes, r.read_gbs,
                        r.decode_floor_seconds, r.torch_prefill_seconds, r.torch_decode_seconds, r.decode_speedup,
                        r.rounds_matched);
  }
  return text;
}

int run_bench_model(BenchModelOptions options) {
  if (options.quick) {
    options.presets = "tiny";
    options.prompt_tokens = 64;
    options.decode_tokens = 8;
    options.rounds = 2;
    options.repeats = 1;
  }
  ROPEPP_CHECK(options.prompt_tokens >= 1 && options.decode_tokens >= 1 && options.rounds >= 1 &&
                   options.repeats >= 1,
               "--prompt-tokens, --decode-tokens, --rounds and --repeats must be >= 1");
  // The KV cache contains the prompt and every round. 2^24 tokens is far past
  // any context the presets are meant for and keeps the products in range.
  const int64_t cache_tokens =
      int64_t{options.prompt_tokens} + int64_t{options.rounds} * options.decode_tokens + 1;
  ROPEPP_CHECK(cache_tokens <= (int64_t{1} << 24),
               "--prompt-tokens {} plus --rounds {} x --decode-tokens {} is {} tokens: expected at most 2^24",
               options.prompt_tokens, options.rounds, options.decode_tokens, cache_tokens - 1);
  // Names are checked before the long measurements start.
  const std::vector<std::string> presets = split_list(options.presets);
  const std::vector<std::string> variants = split_list(options.variants);
  const std::vector<std::string> precisions = split_list(options.weights);
  ROPEPP_CHECK(!presets.empty() && !variants.empty() && !precisions.empty(),
               "--presets, --variants and --weights each need at least one name");
  for (const std::string& preset : presets) model_preset(preset, Variant::kVanilla);
  for (const std::string& variant : variants) parse_variant(variant);
  for (const std::string& precision : precisions) parse_matmul_precision(precision);

  spdlog::info("measuring the machine's ceilings ({} threads)", num_threads());
  const bench::MachineCeilings ceilings =
      bench::measure_machine(options.quick ? bench::quick_machine_options() : bench::MachineOptions{});
  std::fprintf(stderr, "%s\n", bench::format_machine(ceilings).c_str());

  std::filesystem::path work_dir = options.work_dir;
  if (options.torch && work_dir.empty()) {
    work_dir = std::filesystem::temp_directory_path() / fmt::format("ropepp_bench_model_{}", ::getpid());
  }
  if (!work_dir.empty()) std::filesystem::create_directories(work_dir);
  // A temporary folder made here goes away on every way out, errors included.
  struct RemoveOnExit {
    std::filesystem::path path;
    ~RemoveOnExit() {
      std::error_code ignored;
      if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
  } temporary{options.torch && options.work_dir.empty() ? work_dir : std::filesystem::path()};

  std::vector<ModelResult> results;
  for (const std::string& preset : presets) {
    for (const std::string& variant_text : variants) {
      const ModelConfig config = model_preset(preset, parse_variant(variant_text));
      // One set of random weights per preset and variant, shared by both precisions.
      spdlog::info("{} {}: initialising {:.1f}M parameters", preset, variant_name(config.variant),
                   config.parameter_count() / 1e6);
      Weights weights = Weights::random(config, 1);
      for (const std::string& weights_text : precisions) {
        const MatmulPrecision precision = parse_matmul_precision(weights_text);
        if (precision == MatmulPrecision::kBF16 && ceilings.bf16_gemm_gflops <= 0.0) {
          spdlog::warn("skipping bf16 weights: {}", ceilings.bf16_note);
          continue;
        }
        ModelOptions model_options;
        model_options.weights_precision = precision;
        Model model(std::move(weights), model_options);

        ModelResult result;
        result.preset = preset;
        result.variant = variant_name(config.variant);
        result.weights = weights_text;
        result.parameters = config.parameter_count();
        result.prompt_tokens = options.prompt_tokens;
        result.gemm_ceiling_gflops =
            precision == MatmulPrecision::kBF16 ? ceilings.bf16_gemm_gflops : ceilings.sgemm_gflops;
        spdlog::info("{} {} {} weights: prefill {} tokens, decode {} tokens", preset, result.variant, weights_text,
                     options.prompt_tokens, options.decode_tokens);
        KVCache cache = model.make_cache(cache_tokens);
        measure_prefill(model, options, cache, result);
        std::unique_ptr<bench::TorchPeer> torch;
        if (options.torch) torch = start_torch(model, options, work_dir, result);
        measure_decode(model, options, cache, torch.get(), result);
        results.push_back(result);

        weights = std::move(model.mutable_weights());
        weights.disable_bf16();
      }
      if (options.torch) std::filesystem::remove_all(torch_checkpoint(work_dir, preset, variant_name(config.variant)));
    }
  }

  std::fputs(format_table(results).c_str(), stdout);
  if (!options.json_path.empty()) {
    nlohmann::ordered_json json;
    json["machine"] = bench::to_json(ceilings);
    json["results"] = nlohmann::ordered_json::array();
    for (const ModelResult& r : results) json["results"].push_back(to_json(r));
    write_file_atomic(options.json_path, json.dump(2) + "\n");
  }
  if (!options.csv_path.empty()) write_file_atomic(options.csv_path, to_csv(results));
  return 0;
}

}  // namespace

void register_bench_model(CLI::App& app, Commands& commands) {
  CLI::App* bench = app.get_subcommand("bench");
  auto options = std::make_shared<BenchModelOptions>();
  CLI::App* command = bench->add_subcommand(
      "model", "Whole-model prefill and decode tokens/s against the GEMM ceiling and the bandwidth floor");
  command->add_option("--presets", options->presets, "Comma-separated model presets: " + model_preset_names())
      ->capture_default_str();
  command->add_option("--variants", options->variants, "Comma-separated variants: rope, eh, ec")
      ->capture_default_str();
  command->add_option("--weights", options->weights, "Comma-separated weight precisions: f32, bf16")
      ->capture_default_str();
  command->add_option("--prompt-tokens", options->prompt_tokens, "Prefill length in tokens")->capture_default_str();
  command->add_option("--decode-tokens", options->decode_tokens, "Tokens decoded per round after the prompt")
      ->capture_default_str();
  command->add_option("--rounds", options->rounds,
                      "Decode rounds; with --torch ropepp and PyTorch alternate, one round each at a time")
      ->capture_default_str();
  command->add_option("--repeats", options->repeats, "Timed prefills per case; the median is reported")
      ->capture_default_str();
  command->add_flag("--torch", options->torch,
                    "Also time bench/torch_model.py (Debian python3-torch) on a checkpoint of the same weights");
  command->add_option("--torch-script", options->torch_script, "Path of torch_model.py")->capture_default_str();
  command->add_option("--work-dir", options->work_dir,
                      "Folder for the checkpoints given to PyTorch (default: a temporary folder, removed after)");
  command->add_option("--json", options->json_path, "Also write the results as JSON to this file");
  command->add_option("--csv", options->csv_path, "Also write the results as CSV to this file");
  command->add_flag("--quick", options->quick, "Smoke run: tiny preset, 64-token prompt, 2 rounds of 8 tokens");
  commands.push_back(Command{command, [options] { return run_bench_model(*options); }});
}

}  // namespace ropepp::cli
