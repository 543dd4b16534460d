#include "bench/bench_attention.h"

#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "kernels/kv_cache.h"

namespace ropepp::bench {
namespace {

// FlashAttention's convention: the backward does 5 of the forward's 2
// matrix products per score (it recomputes the scores), so forward+backward
// counts 3.5 times the forward's work.
constexpr double kForwardBackwardWork = 3.5;

std::vector<float> random_values(size_t n, uint64_t seed) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = static_cast<float>(gaussian_at(seed, 0, i));
  return values;
}

std::string short_variant(Variant variant) {
  switch (variant) {
    case Variant::kVanilla: return "rope";
    case Variant::kEH: return "eh";
    case Variant::kEC: return "ec";
  }
  return "rope";
}

std::string cache_type_name(CacheType type) { return type == CacheType::kF32 ? "f32" : "bf16"; }

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Multiply-adds of the unmasked scores only: QK^T and PV cost 2 * head_dim
// flops each per visible (query, key) pair and attention head.
double prefill_forward_gflop(const HeadLayout& layout, int64_t tokens) {
  const double pairs = 0.5 * static_cast<double>(tokens) * static_cast<double>(tokens + 1);
  return 4.0 * layout.head_dim * pairs * layout.n_attention_heads() * 1e-9;
}

PrefillResult time_prefill(const AttentionBenchOptions& options, Variant variant, int64_t tokens) {
  const HeadLayout layout = HeadLayout::from_config(variant, options.num_attention_heads,
                                                    options.num_key_value_heads, options.head_dim);
  const RopeTable rope(RopeParams{options.head_dim, 10000.0, {}});
  const int d = layout.head_dim;
  std::vector<int32_t> positions(static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>(t);
  const AttentionArgs args = self_attention_args(layout, rope, tokens, positions.data());

  const std::vector<float> q = random_values(static_cast<size_t>(tokens * layout.n_query_heads * d), 1);
  const std::vector<float> k = random_values(static_cast<size_t>(tokens * layout.n_kv_heads * d), 2);
  const std::vector<float> v = random_values(static_cast<size_t>(tokens * layout.n_kv_heads * d), 3);
  const size_t out_size = static_cast<size_t>(tokens * layout.n_attention_heads() * d);
  const std::vector<float> d_out = random_values(out_size, 4);
  std::vector<float> out(out_size), lse(static_cast<size_t>(tokens * layout.n_attention_heads()));
  std::vector<float> d_q(q.size()), d_k(k.size()), d_v(v.size());

  PrefillResult result;
  result.variant = variant;
  result.tokens = tokens;
  result.forward_gflop = prefill_forward_gflop(layout, tokens);
  result.forward_s = median_seconds(options.prefill_repeats, [&] {
    attention_forward(args, q.data(), k.data(), v.data(), out.data(), lse.data());
  });
  if (options.backward) {
    result.forward_backward_s = median_seconds(options.prefill_repeats, [&] {
      attention_forward(args, q.data(), k.data(), v.data(), out.data(), lse.data());
      attention_backward(args, q.data(), k.data(), v.data(), out.data(), lse.data(), d_out.data(), d_q.data(),
                         d_k.data(), d_v.data());
    });
  }
  return result;
}

DecodeResult time_decode(const AttentionBenchOptions& options, Variant variant, CacheType type,
                         int64_t cache_tokens) {
  const HeadLayout layout = HeadLayout::from_config(variant, options.num_attention_heads,
                                                    options.num_key_value_heads, options.head_dim);
  const RopeTable rope(RopeParams{options.head_dim, 10000.0, {}});
  const int d = layout.head_dim;

  DecodeResult result;
  result.variant = variant;
  result.type = type;
  result.cache_tokens = cache_tokens;
  result.cache_bytes = KVCache(1, layout.n_kv_heads, d, cache_tokens, type).bytes();
  const int n_layers = static_cast<int>(
      std::max<int64_t>(1, (options.decode_working_set_bytes + result.cache_bytes - 1) / result.cache_bytes));

  // Random keys and values for a block of tokens, repeated along the cache:
  // the kernel's speed does not depend on the values.
  KVCache cache(n_layers, layout.n_kv_heads, d, cache_tokens, type);
  const int64_t block = std::min<int64_t>(cache_tokens, 256);
  const std::vector<float> keys = random_values(static_cast<size_t>(block * layout.n_kv_heads * d), 5);
  const std::vector<float> values = random_values(keys.size(), 6);
  for (int layer = 0; layer < n_layers; ++layer) {
    for (int64_t start = 0; start < cache_tokens; start += block) {
      cache.write(layer, start, std::min(block, cache_tokens - start), keys.data(), values.data());
    }
  }

  const std::vector<float> q = random_values(static_cast<size_t>(layout.n_query_heads * d), 7);
  std::vector<float> out(static_cast<size_t>(layout.n_attention_heads() * d)), lse(layout.n_attention_heads());
  const int32_t position = static_cast<int32_t>(cache_tokens - 1);
  AttentionArgs args;
  args.layout = layout;
  args.rope = &rope;
  args.n_queries = 1;
  args.n_keys = cache_tokens;
  args.query_offset = cache_tokens - 1;
  args.query_positions = &position;

  int layer = 0;
  const double read_before = measure_read_gbs(options.decode_working_set_bytes, 3);
  result.seconds = median_seconds(options.decode_repeats, [&] {
    attention_forward_cached(args, q.data(), cache.view(layer), out.data(), lse.data());
    layer = (layer + 1) % n_layers;
  });
  result.read_gbs = std::max(read_before, measure_read_gbs(options.decode_working_set_bytes, 3));
  return result;
}

std::string join(const std::vector<int64_t>& values) {
  std::string text;
  for (const int64_t value : values) text += (text.empty() ? "" : ",") + std::to_string(value);
  return text;
}

// A variant's decode time over RoPE's, both moved to the same bandwidth: the
// ratio of their times over their floors, since decode is bound by memory and
// the two cases ran seconds apart at possibly different bandwidths.
double relative_to_vanilla(const DecodeResult& r, const DecodeResult& vanilla) {
  return (r.seconds / r.floor_seconds()) / (vanilla.seconds / vanilla.floor_seconds()) *
         (static_cast<double>(r.cache_bytes) / vanilla.cache_bytes);
}

}  // namespace

AttentionBenchOptions quick_attention_options() {
  AttentionBenchOptions options;
  options.prefill_lengths = {64, 128};
  options.decode_lengths = {512, 2048};
  options.prefill_repeats = 1;
  options.decode_repeats = 3;
  options.decode_working_set_bytes = int64_t{8} << 20;
  return options;
}

AttentionReport run_attention_bench(const AttentionBenchOptions& options, const MachineCeilings& machine) {
  AttentionReport report;
  report.machine = machine;
  report.options = options;
  report.date = utc_now();

  const int64_t total = static_cast<int64_t>(options.variants.size() *
                                             (options.prefill_lengths.size() +
                                              options.decode_lengths.size() * options.cache_types.size()));
  ProgressBar progress(total, "attention");
  int64_t done = 0;
  for (const int64_t tokens : options.prefill_lengths) {
    for (const Variant variant : options.variants) {
      report.prefill.push_back(time_prefill(options, variant, tokens));
      progress.update(++done, fmt::format("prefill {} T={}", short_variant(variant), tokens));
    }
  }
  for (const CacheType type : options.cache_types) {
    for (const int64_t tokens : options.decode_lengths) {
      for (const Variant variant : options.variants) {
        report.decode.push_back(time_decode(options, variant, type, tokens));
        progress.update(++done, fmt::format("decode {} {} L={}", short_variant(variant), cache_type_name(type), tokens));
      }
    }
  }
  progress.finish();
  return report;
}

void add_torch_baseline(const std::string& script, AttentionReport& report) {
  ROPEPP_CHECK(std::filesystem::exists(script), "PyTorch baseline script not found: {} (run from the repository "
               "root or pass --torch-script)", script);
  const AttentionBenchOptions& options = report.options;
  std::string variants, types;
  for (const Variant variant : options.variants) variants += (variants.empty() ? "" : ",") + short_variant(variant);
  for (const CacheType type : options.cache_types) types += (types.empty() ? "" : ",") + cache_type_name(type);
  // The OpenMP build of OpenBLAS is PyTorch's fastest 2-thread setup on Debian.
  const std::string command = fmt::format(
      "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} "
      "/usr/bin/python3 '{}' --heads {} --kv-heads {} --head-dim {} --variants {} --prefill-lengths '{}' "
      "--decode-lengths '{}' --cache-types {} --threads {} --repeats {} --decode-repeats {}{}",
      script, options.num_attention_heads, options.num_key_value_heads, options.head_dim, variants,
      join(options.prefill_lengths), join(options.decode_lengths), types, report.machine.threads,
      options.prefill_repeats, options.decode_repeats, options.backward ? "" : " --no-backward");
  spdlog::info("running the PyTorch baseline: {}", command);

  std::FILE* pipe = popen(command.c_str(), "r");
  ROPEPP_CHECK(pipe != nullptr, "failed to start the PyTorch baseline: {}", command);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  ROPEPP_CHECK(status == 0, "PyTorch baseline failed with status {} (is python3-torch installed? see its "
               "messages above): {}", status, command);

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(output);
  } catch (const nlohmann::json::parse_error& error) {
    fail("PyTorch baseline printed invalid JSON ({}): {}", error.what(), output.substr(0, 200));
  }
  std::map<std::pair<std::string, int64_t>, const nlohmann::json*> prefill;
  for (const auto& row : json.at("prefill")) prefill[{row.at("variant").get<std::string>(), row.at("tokens").get<int64_t>()}] = &row;
  std::map<std::tuple<std::string, std::string, int64_t>, double> decode;
  for (const auto& row : json.at("decode")) {
    decode[{row.at("variant").get<std::string>(), row.at("cache_type").get<std::string>(),
            row.at("cache_tokens").get<int64_t>()}] = row.at("seconds").get<double>();
  }
  for (PrefillResult& result : report.prefill) {
    const auto found = prefill.find({short_variant(result.variant), result.tokens});
    if (found == prefill.end()) continue;
    result.torch_forward_s = found->second->at("forward_s").get<double>();
    if (found->second->contains("forward_backward_s")) {
      result.torch_forward_backward_s = found->second->at("forward_backward_s").get<double>();
    }
  }
  for (DecodeResult& result : report.decode) {
    const auto found = decode.find({short_variant(result.variant), cache_type_name(result.type), result.cache_tokens});
    if (found != decode.end()) result.torch_s = found->second;
  }
}

std::string format_attention(const AttentionReport& report) {
  const MachineCeilings& machine = report.machine;
  const AttentionBenchOptions& options = report.options;
  std::string text = fmt::format("Attention kernels, {} UTC. Config: {} attention heads, {} key/value heads, "
                                 "head_dim {}; {} threads\n",
                                 report.date, options.num_attention_heads, options.num_key_value_heads,
                                 options.head_dim, machine.threads);
  text += format_machine(machine);

  text += "\nCausal prefill (GFLOP/s count unmasked work only; % of the f32 GEMM ceiling; x: PyTorch time / ropepp time)\n";
  text += fmt::format("{:<9} {:>6} {:>10} {:>9} {:>6} {:>8} {:>10} {:>9} {:>6} {:>8}\n", "variant", "T", "fwd ms",
                      "GFLOP/s", "%gemm", "x torch", "f+b ms", "GFLOP/s", "%gemm", "x torch");
  for (const PrefillResult& r : report.prefill) {
    const double fwd_rate = r.forward_gflop / r.forward_s;
    std::string line = fmt::format("{:<9} {:>6} {:>10.2f} {:>9.1f} {:>5.0f}% {:>8}", variant_name(r.variant),
                                   r.tokens, r.forward_s * 1e3, fwd_rate, 100.0 * fwd_rate / machine.sgemm_gflops,
                                   r.torch_forward_s ? fmt::format("{:.1f}", *r.torch_forward_s / r.forward_s) : "-");
    if (r.forward_backward_s > 0) {
      const double rate = kForwardBackwardWork * r.forward_gflop / r.forward_backward_s;
      line += fmt::format(" {:>10.2f} {:>9.1f} {:>5.0f}% {:>8}", r.forward_backward_s * 1e3, rate,
                          100.0 * rate / machine.sgemm_gflops,
                          r.torch_forward_backward_s
                              ? fmt::format("{:.1f}", *r.torch_forward_backward_s / r.forward_backward_s)
                              : "-");
    }
    text += line + "\n";
  }

  text += fmt::format("\nDecode of one token (floor: cache bytes / read bandwidth measured around each case, {}; "
                      "vs rope: time over RoPE's at the same cache and the same bandwidth)\n", "\"read\"");
  text += fmt::format("{:<9} {:>5} {:>7} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8}\n", "variant", "cache", "tokens",
                      "MiB", "ms", "GB/s", "read", "x floor", "vs rope", "x torch");
  for (const DecodeResult& r : report.decode) {
    const DecodeResult* vanilla = nullptr;
    for (const DecodeResult& other : report.decode) {
      if (other.variant == Variant::kVanilla && other.type == r.type && other.cache_tokens == r.cache_tokens) {
        vanilla = &other;
      }
    }
    text += fmt::format("{:<9} {:>5} {:>7} {:>9.1f} {:>9.3f} {:>8.1f} {:>8.1f} {:>9.2f} {:>8} {:>8}\n",
                        variant_name(r.variant), cache_type_name(r.type), r.cache_tokens, r.cache_bytes / 1048576.0,
                        r.seconds * 1e3, r.cache_bytes / r.seconds * 1e-9, r.read_gbs,
                        r.seconds / r.floor_seconds(),
                        vanilla != nullptr ? fmt::format("{:.2f}", relative_to_vanilla(r, *vanilla)) : "-",
                        r.torch_s ? fmt::format("{:.1f}", *r.torch_s / r.seconds) : "-");
  }
  return text;
}

nlohmann::ordered_json to_json(const AttentionReport& report) {
  const MachineCeilings& machine = report.machine;
  nlohmann::ordered_json json = {{"benchmark", "attention"},
                                 {"date", report.date},
                                 {"num_attention_heads", report.options.num_attention_heads},
                                 {"num_key_value_heads", report.options.num_key_value_heads},
                                 {"head_dim", report.options.head_dim},
                                 {"machine", to_json(machine)},
                                 {"prefill", nlohmann::ordered_json::array()},
                                 {"decode", nlohmann::ordered_json::array()}};
  for (const PrefillResult& r : report.prefill) {
    nlohmann::ordered_json row = {{"variant", short_variant(r.variant)},
                                  {"tokens", r.tokens},
                                  {"forward_s", r.forward_s},
                                  {"forward_gflops", r.forward_gflop / r.forward_s},
                                  {"forward_gemm_fraction", r.forward_gflop / r.forward_s / machine.sgemm_gflops}};
    if (r.forward_backward_s > 0) {
      const double rate = kForwardBackwardWork * r.forward_gflop / r.forward_backward_s;
      row["forward_backward_s"] = r.forward_backward_s;
      row["forward_backward_gflops"] = rate;
      row["forward_backward_gemm_fraction"] = rate / machine.sgemm_gflops;
    }
    if (r.torch_forward_s) row["torch_forward_s"] = *r.torch_forward_s;
    if (r.torch_forward_backward_s) row["torch_forward_backward_s"] = *r.torch_forward_backward_s;
    json["prefill"].push_back(row);
  }
  for (const DecodeResult& r : report.decode) {
    const double floor_s = r.floor_seconds();
    nlohmann::ordered_json row = {{"variant", short_variant(r.variant)},
                                  {"cache_type", cache_type_name(r.type)},
                                  {"cache_tokens", r.cache_tokens},
                                  {"cache_bytes", r.cache_bytes},
                                  {"seconds", r.seconds},
                                  {"gbs", r.cache_bytes / r.seconds * 1e-9},
                                  {"read_gbs", r.read_gbs},
                                  {"floor_s", floor_s},
                                  {"over_floor", r.seconds / floor_s}};
    if (r.torch_s) row["torch_s"] = *r.torch_s;
    json["decode"].push_back(row);
  }
  return json;
}

std::string to_csv(const AttentionReport& report) {
  const MachineCeilings& machine = report.machine;
  std::string csv =
      "kind,variant,cache_type,tokens,seconds,gflops_or_gbs,ceiling_fraction_or_over_floor,torch_seconds,read_gbs\n";
  auto torch = [](const std::optional<double>& value) { return value ? fmt::format("{:.6g}", *value) : ""; };
  for (const PrefillResult& r : report.prefill) {
    const double rate = r.forward_gflop / r.forward_s;
    csv += fmt::format("prefill_forward,{},,{},{:.6g},{:.6g},{:.4f},{},\n", short_variant(r.variant), r.tokens,
                       r.forward_s, rate, rate / machine.sgemm_gflops, torch(r.torch_forward_s));
    if (r.forward_backward_s > 0) {
      const double fb_rate = kForwardBackwardWork * r.forward_gflop / r.forward_backward_s;
      csv += fmt::format("prefill_forward_backward,{},,{},{:.6g},{:.6g},{:.4f},{},\n", short_variant(r.variant),
                         r.tokens, r.forward_backward_s, fb_rate, fb_rate / machine.sgemm_gflops,
                         torch(r.torch_forward_backward_s));
    }
  }
  for (const DecodeResult& r : report.decode) {
    const double floor_s = r.floor_seconds();
    csv += fmt::format("decode,{},{},{},{:.6g},{:.6g},{:.4f},{},{:.4g}\n", short_variant(r.variant),
                       cache_type_name(r.type), r.cache_tokens, r.seconds, r.cache_bytes / r.seconds * 1e-9,
                       r.seconds / floor_s, torch(r.torch_s), r.read_gbs);
  }
  return csv;
}

}  // namespace ropepp::bench
