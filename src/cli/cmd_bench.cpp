// `ropepp bench`: performance measurements. This file contains the parent command
// and its `machine` and `attention` children; other benchmarks attach their
// own children through bench_command().
#include "cli/cmd_bench.h"

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "bench/bench_attention.h"
#include "bench/bench_machine.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"

namespace ropepp::cli {
namespace {

struct BenchMachineOptions {
  bool quick = false;
  int gemm_size = 0;  // 0: the default of the chosen mode
  std::string json_path;
};

struct BenchAttentionOptions {
  bool quick = false;
  int gemm_size = 0;
  std::string prefill_lengths;  // empty: the mode's default
  std::string decode_lengths;
  std::string variants = "rope,eh,ec";
  std::string cache_types = "f32,bf16";
  bool no_backward = false;
  bool skip_prefill = false;
  bool skip_decode = false;
  int repeats = 0;
  int decode_repeats = 0;
  bool torch = false;
  std::string torch_script = "bench/torch_attention.py";
  std::string json_path;
  std::string csv_path;
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

std::vector<int64_t> parse_lengths(const std::string& text, const char* option) {
  std::vector<int64_t> lengths;
  for (const std::string& item : split_list(text)) {
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    ROPEPP_CHECK(used == item.size() && value > 0, "invalid {} entry '{}': expected positive token counts "
                 "separated by commas, e.g. 512,1024", option, item);
    lengths.push_back(value);
  }
  return lengths;
}

bench::MachineOptions machine_options(bool quick, int gemm_size) {
  bench::MachineOptions options = quick ? bench::quick_machine_options() : bench::MachineOptions{};
  if (gemm_size > 0) options.gemm_size = gemm_size;
  return options;
}

int run_bench_machine(const BenchMachineOptions& options) {
  const bench::MachineCeilings machine = bench::measure_machine(machine_options(options.quick, options.gemm_size));
  std::fputs(bench::format_machine(machine).c_str(), stdout);
  if (!options.json_path.empty()) write_file_atomic(options.json_path, bench::to_json(machine).dump(2) + "\n");
  return 0;
}

int run_bench_attention(const BenchAttentionOptions& given) {
  BenchAttentionOptions options = given;
  // Check the baseline script before the long measurement, not after it.
  if (options.torch) {
    const auto found = find_project_file(options.torch_script);
    ROPEPP_CHECK(found.has_value(), "PyTorch baseline script {} not found in the working folder or next to the "
                 "program: run from the repository root or pass --torch-script", options.torch_script);
    options.torch_script = found->string();
  }
  bench::AttentionBenchOptions bench_options =
      options.quick ? bench::quick_attention_options() : bench::AttentionBenchOptions{};
  if (!options.prefill_lengths.empty()) {
    bench_options.prefill_lengths = parse_lengths(options.prefill_lengths, "--prefill-lengths");
  }
  if (!options.decode_lengths.empty()) {
    bench_options.decode_lengths = parse_lengths(options.decode_lengths, "--decode-lengths");
  }
  bench_options.variants.clear();
  for (const std::string& name : split_list(options.variants)) bench_options.variants.push_back(parse_variant(name));
  bench_options.cache_types.clear();
  for (const std::string& name : split_list(options.cache_types)) {
    ROPEPP_CHECK(name == "f32" || name == "bf16", "invalid --cache-types entry '{}': expected f32 or bf16", name);
    bench_options.cache_types.push_back(name == "f32" ? CacheType::kF32 : CacheType::kBF16);
  }
  if (options.no_backward) bench_options.backward = false;
  if (options.skip_prefill) bench_options.prefill_lengths.clear();
  if (options.skip_decode) bench_options.decode_lengths.clear();
  if (options.repeats > 0) bench_options.prefill_repeats = options.repeats;
  if (options.decode_repeats > 0) bench_options.decode_repeats = options.decode_repeats;

  const bench::MachineCeilings machine = bench::measure_machine(machine_options(options.quick, options.gemm_size));
  bench::AttentionReport report = bench::run_attention_bench(bench_options, machine);
  if (options.torch) bench::add_torch_baseline(options.torch_script, report);

  std::fputs(bench::format_attention(report).c_str(), stdout);
  if (!options.json_path.empty()) write_file_atomic(options.json_path, bench::to_json(report).dump(2) + "\n");
  if (!options.csv_path.empty()) write_file_atomic(options.csv_path, bench::to_csv(report));
  return 0;
}

void register_machine(CLI::App& bench, Commands& commands) {
  auto options = std::make_shared<BenchMachineOptions>();
  CLI::App* command = bench.add_subcommand(
      "machine", "Measure the machine's ceilings: f32 GEMM (BLAS), bf16 GEMM (oneDNN) and memory bandwidth");
  command->add_flag("--quick", options->quick, "Small sizes and 2 repeats, for a smoke run");
  command->add_option("--gemm-size", options->gemm_size, "Square GEMM size n (default 2048, 512 with --quick)");
  command->add_option("--json", options->json_path, "Also write the results as JSON to this file");
  commands.push_back(Command{command, [options] { return run_bench_machine(*options); }});
}

void register_attention(CLI::App& bench, Commands& commands) {
  auto options = std::make_shared<BenchAttentionOptions>();
  CLI::App* command = bench.add_subcommand(
      "attention",
      "Time causal prefill (forward, forward+backward) and one-token decode for RoPE, RoPE++EH and RoPE++EC "
      "against the machine's measured ceilings");
  command->add_flag("--quick", options->quick, "Tiny lengths and few repeats, for a smoke run");
  command->add_option("--prefill-lengths", options->prefill_lengths,
                      "Comma-separated prefill lengths in tokens (default 512,1024,2048,4096; 64,128 with --quick)");
  command->add_option("--decode-lengths", options->decode_lengths,
                      "Comma-separated KV cache lengths in tokens (default 4096,16384,32768; 512,2048 with --quick)");
  command->add_option("--variants", options->variants, "Comma-separated variants: rope, eh, ec")->capture_default_str();
  command->add_option("--cache-types", options->cache_types, "Comma-separated KV cache storage types: f32, bf16")
      ->capture_default_str();
  command->add_flag("--no-backward", options->no_backward, "Time the prefill forward only");
  command->add_flag("--skip-prefill", options->skip_prefill, "Time no prefill cases");
  command->add_flag("--skip-decode", options->skip_decode, "Time no decode cases");
  command->add_option("--repeats", options->repeats, "Timed repeats per prefill case, median reported (default 3)");
  command->add_option("--decode-repeats", options->decode_repeats,
                      "Timed repeats per decode case, median reported (default 21)");
  command->add_option("--gemm-size", options->gemm_size, "Square GEMM size n for the ceiling (default 2048)");
  command->add_flag("--torch", options->torch,
                    "Also run the PyTorch eager baseline (needs python3-torch) and print ropepp's speed-up");
  command->add_option("--torch-script", options->torch_script, "Path of the PyTorch baseline script")
      ->capture_default_str();
  command->add_option("--json", options->json_path, "Also write the results as JSON to this file");
  command->add_option("--csv", options->csv_path, "Also write the results as CSV to this file");
  commands.push_back(Command{command, [options] { return run_bench_attention(*options); }});
}

}  // namespace

CLI::App* bench_command(CLI::App& app) {
  for (CLI::App* existing : app.get_subcommands([](CLI::App* sub) { return sub->get_name() == "bench"; })) {
    return existing;
  }
  CLI::App* bench = app.add_subcommand("bench", "Measure kernel and model speed against the machine's limits");
  bench->require_subcommand(1);
  return bench;
}

void register_bench(CLI::App& app, Commands& commands) {
  CLI::App* bench = bench_command(app);
  register_machine(*bench, commands);
  register_attention(*bench, commands);
}

}  // namespace ropepp::cli
