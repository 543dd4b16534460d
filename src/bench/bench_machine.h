// The machine's ceilings, measured in the same run as the kernels they judge:
// f32 GEMM through the BLAS library, bf16 GEMM through oneDNN where the CPU has
// native bf16 dot products, and memory bandwidth.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ropepp::bench {

// Returns the median of a non-empty list (the mean of the two middle values
// for an even count).
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Runs fn once as a warm-up, then `repeats` times, and returns the median
// wall time of one call in seconds.
template <typename Function>
double median_seconds(int repeats, Function&& fn) {
  fn();
  std::vector<double> times;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median(std::move(times));
}

struct MachineOptions {
  int gemm_size = 2048;              // square GEMM size n (n x n times n x n)
  int64_t stream_elements = 1 << 24;  // f32 elements per bandwidth array (64 MiB)
  int repeats = 5;
};

// Settings for a fast smoke run: a small GEMM and 8 MiB arrays, which may fit in a
// last-level cache, so its bandwidth is no ceiling.
MachineOptions quick_machine_options();

struct MachineCeilings {
  std::string cpu_model;       // "model name" of /proc/cpuinfo
  int threads = 0;             // OpenMP threads used for every measurement
  std::string simd_target;     // widest instruction set the kernels use
  int gemm_size = 0;
  double sgemm_gflops = 0.0;   // cblas_sgemm, f32
  double bf16_gemm_gflops = 0.0;  // oneDNN matmul bf16 x bf16 -> f32; 0 when not measured
  std::string bf16_note;       // why bf16 was not measured, if it was not
  double triad_gbs = 0.0;      // a[i] = b[i] + s * c[i], counting 3 arrays of traffic (STREAM's rule)
  double read_gbs = 0.0;       // sums over two arrays on huge pages: reads only, like a decode streaming weights
  int64_t stream_bytes = 0;    // bytes of one bandwidth array
};

MachineCeilings measure_machine(const MachineOptions& options);

// Read bandwidth alone over an array of `bytes` on huge pages, in GB/s: the
// read loop of measure_machine, for benchmarks that re-measure it next to each
// timed run because the machine's bandwidth drifts.
double measure_read_gbs(int64_t bytes, int repeats);

std::string cpu_model_name();

nlohmann::ordered_json to_json(const MachineCeilings& ceilings);

// A human-readable block of lines.
std::string format_machine(const MachineCeilings& ceilings);

}  // namespace ropepp::bench
