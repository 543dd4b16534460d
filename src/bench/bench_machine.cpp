#include "bench/bench_machine.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <fstream>
#include <oneapi/dnnl/dnnl.hpp>

#include "core/bf16.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "kernels/simd.h"

namespace ropepp::bench {
namespace {

// Elements each bandwidth loop step handles; 32 independent partial sums let
// the read loop run at memory speed instead of waiting on one add chain.
constexpr int64_t kStreamUnroll = 32;

void fill_random(float* x, int64_t n, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(uniform_open(hash_counter(seed, 0, i)) - 0.5);
}

double measure_sgemm(int n, int repeats) {
  std::vector<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
  fill_random(a.data(), static_cast<int64_t>(a.size()), 1);
  fill_random(b.data(), static_cast<int64_t>(b.size()), 2);
  const double seconds = median_seconds(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(),
                n);
  });
  return 2.0 * n * n * static_cast<double>(n) / seconds * 1e-9;
}

double measure_bf16_gemm(int n, int repeats) {
  using dnnl::memory;
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc a_desc({n, n}, memory::data_type::bf16, memory::format_tag::ab);
  const memory::desc b_desc({n, n}, memory::data_type::bf16, memory::format_tag::ab);
  const memory::desc c_desc({n, n}, memory::data_type::f32, memory::format_tag::ab);
  const dnnl::matmul::primitive_desc descriptor(dnnl::matmul::desc(a_desc, b_desc, c_desc), engine);
  const dnnl::matmul matmul(descriptor);

  memory a(a_desc, engine), b(b_desc, engine), c(c_desc, engine);
  std::vector<float> random(static_cast<size_t>(n) * n);
  fill_random(random.data(), static_cast<int64_t>(random.size()), 3);
  for (memory* m : {&a, &b}) {
    auto* data = static_cast<bf16_t*>(m->get_data_handle());
    for (size_t i = 0; i < random.size(); ++i) data[i] = float_to_bf16(random[i]);
  }
  const double seconds = median_seconds(repeats, [&] {
    matmul.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    stream.wait();
  });
  return 2.0 * n * n * static_cast<double>(n) / seconds * 1e-9;
}

// Both loops split the arrays the same static way as their first touch, so
// each thread streams memory it placed itself.
void measure_bandwidth(int64_t n, int repeats, MachineCeilings& ceilings) {
  n = (n / kStreamUnroll) * kStreamUnroll;
  std::vector<float> a(static_cast<size_t>(n)), b(a.size()), c(a.size());
  fill_random(a.data(), n, 4);
  fill_random(b.data(), n, 5);
  fill_random(c.data(), n, 6);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  ceilings.stream_bytes = bytes;

  const float s = 0.5f;
  const double triad = median_seconds(repeats, [&] {
    float* out = a.data();
    const float* x = b.data();
    const float* y = c.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] + s * y[i];
  });
  ceilings.triad_gbs = 3.0 * bytes / triad * 1e-9;

  volatile float sink = 0.0f;
  const double read = median_seconds(repeats, [&] {
    const float* x = b.data();
    const float* y = c.data();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      float partial[kStreamUnroll] = {};
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; i += kStreamUnroll) {
        for (int64_t u = 0; u < kStreamUnroll; ++u) partial[u] += x[i + u] + y[i + u];
      }
      for (const float p : partial) total += p;
    }
    sink = sink + total;
  });
  ceilings.read_gbs = 2.0 * bytes / read * 1e-9;
}

}  // namespace

MachineOptions quick_machine_options() {
  MachineOptions options;
  options.gemm_size = 512;
  options.stream_elements = 1 << 21;  // 8 MiB per array
  options.repeats = 2;
  return options;
}

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

MachineCeilings measure_machine(const MachineOptions& options) {
  MachineCeilings ceilings;
  ceilings.cpu_model = cpu_model_name();
  ceilings.threads = omp_get_max_threads();
  ceilings.simd_target = simd_target_name(active_simd_target());
  ceilings.gemm_size = options.gemm_size;
  ceilings.sgemm_gflops = measure_sgemm(options.gemm_size, options.repeats);
  if (!cpu_features().avx512_bf16) {
    ceilings.bf16_note = "CPU has no AVX512_BF16; oneDNN would emulate bf16, which is no ceiling";
  } else {
    try {
      ceilings.bf16_gemm_gflops = measure_bf16_gemm(options.gemm_size, options.repeats);
    } catch (const dnnl::error& error) {
      ceilings.bf16_note = fmt::format("oneDNN bf16 matmul failed: {}", error.what());
    }
  }
  measure_bandwidth(options.stream_elements, options.repeats, ceilings);
  return ceilings;
}

nlohmann::ordered_json to_json(const MachineCeilings& ceilings) {
  nlohmann::ordered_json json = {{"cpu_model", ceilings.cpu_model},
                                 {"threads", ceilings.threads},
                                 {"simd_target", ceilings.simd_target},
                                 {"gemm_size", ceilings.gemm_size},
                                 {"sgemm_gflops", ceilings.sgemm_gflops},
                                 {"bf16_gemm_gflops", ceilings.bf16_gemm_gflops},
                                 {"triad_gbs", ceilings.triad_gbs},
                                 {"read_gbs", ceilings.read_gbs},
                                 {"stream_array_bytes", ceilings.stream_bytes}};
  if (!ceilings.bf16_note.empty()) json["bf16_note"] = ceilings.bf16_note;
  return json;
}

std::string format_machine(const MachineCeilings& ceilings) {
  std::string text = fmt::format("CPU: {} ({} threads, kernels use {})\n", ceilings.cpu_model, ceilings.threads,
                                 ceilings.simd_target);
  text += fmt::format("f32 GEMM (cblas_sgemm, n={}): {:.1f} GFLOP/s\n", ceilings.gemm_size, ceilings.sgemm_gflops);
  if (ceilings.bf16_gemm_gflops > 0) {
    text += fmt::format("bf16 GEMM (oneDNN matmul, n={}): {:.1f} GFLOP/s\n", ceilings.gemm_size,
                        ceilings.bf16_gemm_gflops);
  } else {
    text += fmt::format("bf16 GEMM: not measured ({})\n", ceilings.bf16_note);
  }
  text += fmt::format("memory bandwidth ({} MiB arrays): triad {:.1f} GB/s, read {:.1f} GB/s\n",
                      ceilings.stream_bytes >> 20, ceilings.triad_gbs, ceilings.read_gbs);
  return text;
}

}  // namespace ropepp::bench
