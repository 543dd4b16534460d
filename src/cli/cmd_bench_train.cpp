// `ropepp bench train`: tokens per second of whole training steps for model
// presets, against the measured GEMM ceiling and against PyTorch training the
// same model and batch (bench/torch_train.py).
#include <cstdio>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bench/bench_machine.h"
#include "cli/cmd_bench.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "train/train_bench.h"
#include "train/train_config.h"

namespace ropepp::cli {
namespace {

struct BenchTrainOptions {
  std::string presets = "tiny,small,56m";
  std::string variant = "rope";
  int64_t seq_len = 512;
  int64_t batch = 4;
  int steps = 3;
  int vocab_size = 320;  // the byte tokenizer's 259 ids rounded up to a multiple of 64
  bool skip_bf16 = false;
  bool torch = false;
  std::string torch_script = "bench/torch_train.py";
  bool quick = false;
  std::string json_path;
};

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

// Runs the PyTorch baseline on the same model and batch; returns its JSON, or
// null with a warning when the script fails (e.g. python3-torch missing).
nlohmann::json run_torch(const BenchTrainOptions& options, const ModelConfig& model) {
  const std::string command = fmt::format(
      "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 '{}' --hidden {} --layers {} "
      "--heads {} --kv-heads {} --intermediate {} --vocab {} --variant {} --seq-len {} --batch {} --steps {} "
      "--threads {}",
      options.torch_script, model.hidden_size, model.num_hidden_layers, model.num_attention_heads,
      model.num_key_value_heads, model.intermediate_size, model.vocab_size, options.variant, options.seq_len,
      options.batch, options.steps, num_threads());
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return nullptr;
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  try {
    if (status == 0) return nlohmann::json::parse(output);
  } catch (const nlohmann::json::exception&) {
  }
  spdlog::warn("the PyTorch baseline failed (exit status {}): {}", status, command);
  return nullptr;
}

int run_bench_train(const BenchTrainOptions& options) {
  bench::MachineOptions machine_options = options.quick ? bench::quick_machine_options() : bench::MachineOptions{};
  const bench::MachineCeilings machine = bench::measure_machine(machine_options);
  std::fprintf(stderr, "%s\n", bench::format_machine(machine).c_str());

  nlohmann::ordered_json report;
  report["machine"] = bench::to_json(machine);
  report["seq_len"] = options.seq_len;
  report["batch"] = options.batch;
  report["variant"] = options.variant;
  report["results"] = nlohmann::json::array();

  std::printf("%-7s %-8s %9s %9s %12s %7s %12s %9s\n", "preset", "products", "params", "tokens", "tokens/s", "MFU",
              "torch tok/s", "speed-up");
  for (const std::string& preset : split_names(options.presets)) {
    train::TrainConfig settings;
    settings.model = preset;
    settings.variant = options.variant;
    settings.vocab_size = options.vocab_size;
    settings.seq_len = options.seq_len;
    ModelConfig model = train::resolve_model_config(settings, options.vocab_size);
    model.bos_token_id = -1;
    model.eos_token_ids.clear();

    nlohmann::json torch = options.torch ? run_torch(options, model) : nlohmann::json();
    std::vector<std::pair<std::string, MatmulPrecision>> precisions = {{"f32", MatmulPrecision::kF32}};
    if (!options.skip_bf16 && machine.bf16_gemm_gflops > 0) precisions.push_back({"bf16", MatmulPrecision::kBF16});
    for (const auto& [name, precision] : precisions) {
      const train::StepTiming timing =
          train::time_training_steps(model, options.batch, options.seq_len, precision, options.steps);
      const double ceiling = precision == MatmulPrecision::kBF16 ? machine.bf16_gemm_gflops : machine.sgemm_gflops;
      const double mfu = timing.flops_per_token * timing.tokens_per_second / (ceiling * 1e9);
      const double torch_speed = torch.is_object() ? torch["tokens_per_second"].get<double>() : 0.0;
      std::printf("%-7s %-8s %8.1fM %9lld %12.0f %6.0f%% %12s %9s\n", preset.c_str(), name.c_str(),
                  static_cast<double>(timing.parameters) / 1e6, static_cast<long long>(timing.tokens_per_step),
                  timing.tokens_per_second, 100 * mfu,
                  torch_speed > 0 ? fmt::format("{:.0f}", torch_speed).c_str() : "-",
                  torch_speed > 0 ? fmt::format("{:.2f}x", timing.tokens_per_second / torch_speed).c_str() : "-");
      std::fflush(stdout);
      nlohmann::ordered_json entry;
      entry["preset"] = preset;
      entry["precision"] = name;
      entry["parameters"] = timing.parameters;
      entry["tokens_per_step"] = timing.tokens_per_step;
      entry["step_seconds"] = timing.step_seconds;
      entry["tokens_per_second"] = timing.tokens_per_second;
      entry["flops_per_token"] = timing.flops_per_token;
      entry["gemm_ceiling_gflops"] = ceiling;
      entry["mfu"] = mfu;
      entry["torch"] = torch;
      report["results"].push_back(entry);
    }
  }
  std::printf("MFU = (6 x matrix-product parameters + causal attention) FLOPs per token x tokens/s / the GEMM "
              "ceiling of the same precision measured above; %d threads\n",
              num_threads());
  if (!options.json_path.empty()) write_file_atomic(options.json_path, report.dump(2) + "\n");
  return 0;
}

}  // namespace

void register_bench_train(CLI::App& app, Commands& commands) {
  CLI::App* command = bench_command(app)->add_subcommand(
      "train", "Tokens per second of training steps (forward, backward, AdamW) for model presets, against the "
               "measured GEMM ceiling and PyTorch");
  auto options = std::make_shared<BenchTrainOptions>();
  command->add_option("--presets", options->presets, "Comma-separated model presets (tiny, small, 56m, 376m, ...)")
      ->capture_default_str();
  command->add_option("--variant", options->variant, "Attention: rope, eh or ec")->capture_default_str();
  command->add_option("--seq-len", options->seq_len, "Tokens per sequence")->capture_default_str();
  command->add_option("--batch", options->batch, "Sequences per step")->capture_default_str();
  command->add_option("--steps", options->steps, "Timed steps per configuration (median reported)")
      ->capture_default_str();
  command->add_option("--vocab-size", options->vocab_size, "Vocabulary (embedding rows)")->capture_default_str();
  command->add_flag("--skip-bf16", options->skip_bf16, "Time f32 matrix products only");
  command->add_flag("--torch", options->torch, "Also time bench/torch_train.py (Debian python3-torch) on the same "
                                               "model and batch");
  command->add_option("--torch-script", options->torch_script, "Path of the PyTorch baseline script")
      ->capture_default_str();
  command->add_flag("--quick", options->quick, "Smaller machine-ceiling measurements");
  command->add_option("--json", options->json_path, "Also write the results as JSON to this file");
  commands.push_back({command, [options] { return run_bench_train(*options); }});
}

}  // namespace ropepp::cli
