// `ropepp bench tokenizer`: encoding speed of ropepp's tokenizer against
// Hugging Face's Rust tokenizers (through Node.js) on the same text, in one run.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/cmd_bench.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::cli {
namespace {

struct BenchTokenizerOptions {
  std::string tokenizer = "data/tokenizers/llama3/tokenizer.json";
  std::string text = "data/tokenizers/text/moby-dick.txt";
  int repeats = 5;
  std::string node_modules = "data/tokenizers/node/node_modules";
  std::string rust_script = "bench/rust_tokenizer.mjs";
  bool skip_rust = false;
  std::string json_path;
};

struct Timing {
  double load_s = 0;
  double first_s = 0;  // first encode, cold pre-token cache
  double best_s = 0;   // best of all repeats
  int64_t tokens = 0;
  std::string checksum;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// FNV-1a over the ids as 32-bit little-endian words (the same in rust_tokenizer.mjs).
std::string checksum_ids(const std::vector<TokenId>& ids) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (TokenId id : ids) {
    for (int shift = 0; shift < 32; shift += 8) {
      hash ^= (static_cast<uint32_t>(id) >> shift) & 0xFF;
      hash *= 0x100000001b3ull;
    }
  }
  return fmt::format("{:x}", hash);
}

Timing time_ropepp(const BenchTokenizerOptions& options, const std::string& text) {
  Timing timing;
  const auto load_start = std::chrono::steady_clock::now();
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.tokenizer);
  timing.load_s = seconds_since(load_start);

  std::vector<TokenId> ids;
  timing.best_s = 1e30;
  for (int i = 0; i < options.repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ids = tokenizer->encode(text, false);
    const double elapsed = seconds_since(start);
    if (i == 0) timing.first_s = elapsed;
    timing.best_s = std::min(timing.best_s, elapsed);
  }
  timing.tokens = static_cast<int64_t>(ids.size());
  timing.checksum = checksum_ids(ids);
  return timing;
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

Timing time_rust(const BenchTokenizerOptions& options) {
  ROPEPP_CHECK(std::filesystem::exists(options.rust_script),
               "--rust-script {}: not found; run from the repository root or pass the path", options.rust_script);
  ROPEPP_CHECK(std::filesystem::exists(std::filesystem::path(options.node_modules) / "@anush008/tokenizers"),
               "--node-modules {}: has no @anush008/tokenizers; run scripts/fetch_tokenizers.sh, or pass --skip-rust",
               options.node_modules);
  const std::string command =
      fmt::format("node {} {} {} {} {}", shell_quote(options.rust_script), shell_quote(options.node_modules),
                  shell_quote(options.tokenizer), shell_quote(options.text), options.repeats);
  spdlog::info("running the Rust tokenizers: {}", command);
  FILE* pipe = ::popen(command.c_str(), "r");
  ROPEPP_CHECK(pipe != nullptr, "failed to start node for the Rust tokenizers: {}", command);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  ROPEPP_CHECK(status == 0, "the Rust tokenizers run failed (exit status {}): {}", status, command);

  nlohmann::json result;
  try {
    result = nlohmann::json::parse(output);
  } catch (const nlohmann::json::exception& error) {
    fail("{}: printed invalid JSON ({}): {}", options.rust_script, error.what(), output.substr(0, 200));
  }
  Timing timing;
  timing.load_s = result.at("load_s").get<double>();
  timing.first_s = result.at("first_s").get<double>();
  timing.best_s = result.at("best_s").get<double>();
  timing.tokens = result.at("tokens").get<int64_t>();
  timing.checksum = result.at("checksum").get<std::string>();
  return timing;
}

nlohmann::ordered_json timing_json(const Timing& timing, double megabytes) {
  return {{"load_s", timing.load_s},
          {"first_encode_s", timing.first_s},
          {"best_encode_s", timing.best_s},
          {"mb_per_s", megabytes / timing.best_s},
          {"tokens_per_s", timing.tokens / timing.best_s},
          {"first_mb_per_s", megabytes / timing.first_s},
          {"tokens", timing.tokens},
          {"ids_checksum", timing.checksum}};
}

void print_row(const char* name, const Timing& timing, double megabytes) {
  std::printf("%-16s %8.3f %10.4f %10.4f %9.2f %9.2f %12.0f %10lld\n", name, timing.load_s, timing.first_s,
              timing.best_s, megabytes / timing.first_s, megabytes / timing.best_s, timing.tokens / timing.best_s,
              static_cast<long long>(timing.tokens));
}

int run_bench_tokenizer(const BenchTokenizerOptions& options) {
  std::ifstream in(options.text, std::ios::binary);
  ROPEPP_CHECK(in.good(), "--text {}: cannot open the file; run scripts/fetch_tokenizers.sh for Moby-Dick",
               options.text);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const double megabytes = static_cast<double>(text.size()) / 1e6;
  spdlog::info("encoding {} ({:.2f} MB) with {}, {} repeats, one thread", options.text, megabytes, options.tokenizer,
               options.repeats);

  const Timing ropepp_timing = time_ropepp(options, text);
  std::optional<Timing> rust_timing;
  if (!options.skip_rust) rust_timing = time_rust(options);

  std::printf("%-16s %8s %10s %10s %9s %9s %12s %10s\n", "implementation", "load_s", "first_s", "best_s",
              "first_MB/s", "MB/s", "tokens/s", "tokens");
  print_row("ropepp", ropepp_timing, megabytes);
  nlohmann::ordered_json record = {{"benchmark", "tokenizer"},
                                   {"tokenizer", options.tokenizer},
                                   {"text", options.text},
                                   {"megabytes", megabytes},
                                   {"repeats", options.repeats},
                                   {"ropepp", timing_json(ropepp_timing, megabytes)}};
  if (rust_timing) {
    print_row("hf-tokenizers", *rust_timing, megabytes);
    const bool same_ids = rust_timing->checksum == ropepp_timing.checksum && rust_timing->tokens == ropepp_timing.tokens;
    const double speedup = rust_timing->best_s / ropepp_timing.best_s;
    std::printf("ids identical: %s; ropepp / hf-tokenizers speed: %.2fx (best encode)\n", same_ids ? "yes" : "NO",
                speedup);
    record["hf_tokenizers"] = timing_json(*rust_timing, megabytes);
    record["ids_identical"] = same_ids;
    record["speedup_best"] = speedup;
    if (!same_ids) spdlog::error("ropepp and the Rust tokenizers produced different ids for {}", options.text);
  }
  if (!options.json_path.empty()) write_file_atomic(options.json_path, record.dump(2) + "\n");
  return 0;
}

}  // namespace

void register_bench_tokenizer(CLI::App& app, Commands& commands) {
  CLI::App* bench = bench_command(app);
  auto options = std::make_shared<BenchTokenizerOptions>();
  CLI::App* command = bench->add_subcommand(
      "tokenizer", "Encoding speed (MB/s, tokens/s, one thread) of ropepp against Hugging Face's Rust tokenizers");
  command->add_option("--tokenizer", options->tokenizer, "Tokenizer path (as for `ropepp tokenize`)")
      ->capture_default_str();
  command->add_option("--text", options->text, "UTF-8 text file encoded as one string")->capture_default_str();
  command->add_option("--repeats", options->repeats, "Number of encodes per implementation; the best time is reported")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  command->add_option("--node-modules", options->node_modules, "Folder with @anush008/tokenizers installed")
      ->capture_default_str();
  command->add_option("--rust-script", options->rust_script, "Node.js script that times the Rust tokenizers")
      ->capture_default_str();
  command->add_flag("--skip-rust", options->skip_rust, "Time ropepp only (no Node.js needed)");
  command->add_option("--json", options->json_path, "Also write the results as JSON to this file");
  commands.push_back(Command{command, [options] { return run_bench_tokenizer(*options); }});
}

}  // namespace ropepp::cli
