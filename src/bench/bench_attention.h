// Attention kernel benchmarks: causal prefill forward and forward+backward,
// and one-token decode against a KV cache, for RoPE, RoPE++EH and RoPE++EC,
// each set against the machine ceilings measured in the same run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_machine.h"
#include "kernels/attention.h"

namespace ropepp::bench {

struct AttentionBenchOptions {
  // Llama config counts; the variant derives its layout from them (EH halves both).
  int num_attention_heads = 8;
  int num_key_value_heads = 4;
  int head_dim = 128;
  std::vector<Variant> variants = {Variant::kVanilla, Variant::kEH, Variant::kEC};
  std::vector<int64_t> prefill_lengths = {512, 1024, 2048, 4096};
  std::vector<int64_t> decode_lengths = {4096, 16384, 32768};
  std::vector<CacheType> cache_types = {CacheType::kF32, CacheType::kBF16};
  bool backward = true;
  int prefill_repeats = 3;
  int decode_repeats = 21;
  // Decode cycles through enough cache layers to touch at least this many
  // bytes between two visits of one layer, so the last-level cache cannot
  // hold a layer from one repeat to the next (as in a real multi-layer model).
  int64_t decode_working_set_bytes = int64_t{256} << 20;
};

// Settings for a fast smoke run (tests use it): tiny lengths, few repeats.
AttentionBenchOptions quick_attention_options();

struct PrefillResult {
  Variant variant = Variant::kVanilla;
  int64_t tokens = 0;
  double forward_s = 0.0;
  double forward_backward_s = 0.0;  // 0 when the backward was skipped
  double forward_gflop = 0.0;       // unmasked work only
  std::optional<double> torch_forward_s, torch_forward_backward_s;
};

struct DecodeResult {
  Variant variant = Variant::kVanilla;
  CacheType type = CacheType::kF32;
  int64_t cache_tokens = 0;
  int64_t cache_bytes = 0;  // keys and values of one layer
  double seconds = 0.0;
  // Read bandwidth measured right before and after the timed calls (the
  // higher one), in GB/s: the floor of this case, because the machine's
  // bandwidth drifts between cases.
  double read_gbs = 0.0;
  std::optional<double> torch_s;

  double floor_seconds() const { return static_cast<double>(cache_bytes) / (read_gbs * 1e9); }
};

struct AttentionReport {
  MachineCeilings machine;
  AttentionBenchOptions options;
  std::string date;  // UTC, ISO 8601
  std::vector<PrefillResult> prefill;
  std::vector<DecodeResult> decode;
};

AttentionReport run_attention_bench(const AttentionBenchOptions& options, const MachineCeilings& machine);

// Runs the PyTorch eager baseline script with /usr/bin/python3 at the same
// shapes and thread count and stores its times in the report. Throws
// ropepp::Error when the script fails or prints no valid JSON.
void add_torch_baseline(const std::string& script, AttentionReport& report);

std::string format_attention(const AttentionReport& report);
nlohmann::ordered_json to_json(const AttentionReport& report);
std::string to_csv(const AttentionReport& report);

}  // namespace ropepp::bench
