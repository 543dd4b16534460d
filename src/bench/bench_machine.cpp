#include "bench/bench_machine.h"

// GCC 12 reports its own placeholders inside _mm512_reduce_add_ps as
// uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cblas.h>
#include <immintrin.h>
#include <fmt/format.h>
#include <omp.h>

#include <fstream>
#include <oneapi/dnnl/dnnl.hpp>

#include "core/bf16.h"
#include "core/huge_pages.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "kernels/simd.h"

namespace ropepp::bench {
namespace {

// Elements each read-loop step handles: four 16-float vectors, so four
// independent add chains keep the loads ahead of the adds.
constexpr int64_t kStreamUnroll = 64;

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

// Sum of x[begin..end), end - begin a multiple of kStreamUnroll. The read
// ceiling has to be the fastest read this CPU does, or the decode floors built
// on it flatter the kernels. On the 2-core Zen 4, a compiler-vectorised SSE
// loop over 4 KiB pages read 49 GB/s where this loop over huge pages read 62.
__attribute__((target("avx512f"))) float read_sum_avx512(const float* x, int64_t begin, int64_t end) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (int64_t i = begin; i < end; i += kStreamUnroll) {
    acc0 = _mm512_add_ps(acc0, _mm512_loadu_ps(x + i));
    acc1 = _mm512_add_ps(acc1, _mm512_loadu_ps(x + i + 16));
    acc2 = _mm512_add_ps(acc2, _mm512_loadu_ps(x + i + 32));
    acc3 = _mm512_add_ps(acc3, _mm512_loadu_ps(x + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

float read_sum_portable(const float* x, int64_t begin, int64_t end) {
  float partial[kStreamUnroll] = {};
  for (int64_t i = begin; i < end; i += kStreamUnroll) {
    for (int64_t u = 0; u < kStreamUnroll; ++u) partial[u] += x[i + u];
  }
  float total = 0.0f;
  for (const float p : partial) total += p;
  return total;
}

// Reads the whole array on every thread team member, each its static share.
double read_seconds(const HugePageVector<float>& x, int repeats) {
  const int64_t n = static_cast<int64_t>(x.size()) / kStreamUnroll;
  const bool avx512 = active_simd_target() == SimdTarget::kAvx512;
  volatile float sink = 0.0f;
  return median_seconds(repeats, [&] {
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      const int64_t threads = omp_get_num_threads();
      const int64_t thread = omp_get_thread_num();
      const int64_t begin = n * thread / threads * kStreamUnroll;
      const int64_t end = n * (thread + 1) / threads * kStreamUnroll;
      total += avx512 ? read_sum_avx512(x.data(), begin, end) : read_sum_portable(x.data(), begin, end);
    }
    sink = sink + total;
  });
}

HugePageVector<float> random_array(int64_t n, uint64_t seed) {
  HugePageVector<float> x(static_cast<size_t>(n));
  fill_random(x.data(), n, seed);
  return x;
}

void measure_bandwidth(int64_t n, int repeats, MachineCeilings& ceilings) {
  n = (n / kStreamUnroll) * kStreamUnroll;
  HugePageVector<float> a = random_array(n, 4), b = random_array(n, 5), c = random_array(n, 6);
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
  // Two arrays, 4x a 32 MiB last-level cache, so the reads come from memory.
  ceilings.read_gbs = 2.0 * bytes / (read_seconds(b, repeats) + read_seconds(c, repeats)) * 1e-9;
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

double measure_read_gbs(int64_t bytes, int repeats) {
  const int64_t n = std::max<int64_t>(kStreamUnroll, bytes / 4 / kStreamUnroll * kStreamUnroll);
  const HugePageVector<float> x = random_array(n, 7);
  return n * 4.0 / read_seconds(x, repeats) * 1e-9;
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
