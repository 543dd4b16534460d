#include "model/matmul_kernels.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the AVX-512
// intrinsic headers as (maybe-)uninitialized. It also warns that __m512 values
// change the ABI of functions, which here are only called from AVX-512 code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "core/cpu.h"
#include "kernels/simd.h"
#include "core/error.h"

namespace ropepp::kernels_detail {
namespace {

constexpr int kMaxRowsPerPass = 4;

// ---- f32 GEMV, and bf16 widened to f32 ------------------------------------

template <int kRows>
void gemv_f32_scalar_rows(const float* x, int64_t in, const float* weight, int64_t o_begin, int64_t o_end,
                          float* y, int64_t ldy, bool accumulate) {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* w = weight + o * in;
    float sums[kRows] = {};
    for (int64_t i = 0; i < in; ++i) {
      for (int r = 0; r < kRows; ++r) sums[r] += x[r * in + i] * w[i];
    }
    for (int r = 0; r < kRows; ++r) y[r * ldy + o] = accumulate ? y[r * ldy + o] + sums[r] : sums[r];
  }
}

// Access order decides the speed of a GEMV here, since it only streams W.
// For one row of x (decode), W is read in storage order, one weight row after
// the other with four accumulators, so each thread reads a single stream. On
// the 2-core Zen 4 this measured 85% (f32) and 97% (bf16) of a plain read loop
// over a 128256 x 1024 LM head. Eight rows read side by side reached 80% and
// 53%, and the two rows of the first version 50%. Several rows of x reuse
// each weight from registers instead, in blocks of kOut weight rows bounded by
// the kOut x kRows accumulators that fit in 32 registers.
template <int kRows>
constexpr int kOutBlock = kRows == 2 ? 4 : 2;

// Sixteen values as f32; bf16 (AVX-512 without bf16 dot products) is widened
// by a 16-bit shift. The masked forms read only the lanes in `mask`.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline __m512 load16(const float* p) {
  return _mm512_loadu_ps(p);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline __m512 load16(const bf16_t* p) {
  const __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline __m512 load16(__mmask16 mask, const float* p) {
  return _mm512_maskz_loadu_ps(mask, p);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline __m512 load16(__mmask16 mask,
                                                                                   const bf16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p)), 16));
}

// y[o] (+)= W[o] . x for o in o_begin..o_end, W read front to back, for f32
// (T = float) or widened bf16 (T = bf16_t, x already rounded to bf16) weights.
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void gemv_avx512_sequential(
    const T* x, int64_t in, const T* weight, int64_t o_begin, int64_t o_end, float* y, bool accumulate) {
  const int64_t tail = in % 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1u);
  for (int64_t o = o_begin; o < o_end; ++o) {
    const T* w = weight + o * in;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 64 <= in; i += 64) {
      acc0 = _mm512_fmadd_ps(load16(w + i), load16(x + i), acc0);
      acc1 = _mm512_fmadd_ps(load16(w + i + 16), load16(x + i + 16), acc1);
      acc2 = _mm512_fmadd_ps(load16(w + i + 32), load16(x + i + 32), acc2);
      acc3 = _mm512_fmadd_ps(load16(w + i + 48), load16(x + i + 48), acc3);
    }
    for (; i + 16 <= in; i += 16) acc0 = _mm512_fmadd_ps(load16(w + i), load16(x + i), acc0);
    if (tail != 0) acc1 = _mm512_fmadd_ps(load16(tail_mask, w + i), load16(tail_mask, x + i), acc1);
    const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
    y[o] = accumulate ? y[o] + sum : sum;
  }
}

// Output rows o..o+kOut-1 for kRows rows of x, x_stride elements apart.
template <int kRows, int kOut, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline void gemv_avx512_block(
    const T* x, int64_t x_stride, int64_t in, const T* weight, int64_t o, float* y, int64_t ldy, bool accumulate) {
  const int64_t tail = in % 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1u);
  __m512 acc[kOut][kRows];
  for (int j = 0; j < kOut; ++j) {
    for (int r = 0; r < kRows; ++r) acc[j][r] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 16 <= in; i += 16) {
    for (int j = 0; j < kOut; ++j) {
      const __m512 wv = load16(weight + (o + j) * in + i);
      for (int r = 0; r < kRows; ++r) acc[j][r] = _mm512_fmadd_ps(wv, load16(x + r * x_stride + i), acc[j][r]);
    }
  }
  if (tail != 0) {
    for (int j = 0; j < kOut; ++j) {
      const __m512 wv = load16(tail_mask, weight + (o + j) * in + i);
      for (int r = 0; r < kRows; ++r) {
        acc[j][r] = _mm512_fmadd_ps(wv, load16(tail_mask, x + r * x_stride + i), acc[j][r]);
      }
    }
  }
  for (int j = 0; j < kOut; ++j) {
    for (int r = 0; r < kRows; ++r) {
      const float sum = _mm512_reduce_add_ps(acc[j][r]);
      float& out = y[r * ldy + o + j];
      out = accumulate ? out + sum : sum;
    }
  }
}

template <int kRows, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void gemv_avx512_rows(
    const T* x, int64_t x_stride, int64_t in, const T* weight, int64_t o_begin, int64_t o_end, float* y,
    int64_t ldy, bool accumulate) {
  if constexpr (kRows == 1) {
    gemv_avx512_sequential<T>(x, in, weight, o_begin, o_end, y, accumulate);
    return;
  }
  constexpr int kOut = kOutBlock<kRows>;
  int64_t o = o_begin;
  for (; o + kOut <= o_end; o += kOut) {
    gemv_avx512_block<kRows, kOut, T>(x, x_stride, in, weight, o, y, ldy, accumulate);
  }
  for (; o < o_end; ++o) gemv_avx512_block<kRows, 1, T>(x, x_stride, in, weight, o, y, ldy, accumulate);
}

// ---- bf16 GEMV --------------------------------------------------------------

// x_bf16 contains the rows of x rounded to bf16, x_stride elements apart.
template <int kRows>
void gemv_bf16_scalar_rows(const bf16_t* x_bf16, int64_t x_stride, int64_t in, const bf16_t* weight,
                           int64_t o_begin, int64_t o_end, float* y, int64_t ldy, bool accumulate) {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const bf16_t* w = weight + o * in;
    float sums[kRows] = {};
    for (int64_t i = 0; i < in; ++i) {
      const float wi = bf16_to_float(w[i]);
      for (int r = 0; r < kRows; ++r) sums[r] += bf16_to_float(x_bf16[r * x_stride + i]) * wi;
    }
    for (int r = 0; r < kRows; ++r) y[r * ldy + o] = accumulate ? y[r * ldy + o] + sums[r] : sums[r];
  }
}

// Native bf16 dot products: each _mm512_dpbf16_ps multiplies 32 bf16 pairs
// and accumulates into 16 f32 lanes. Output rows go in blocks as in the f32 GEMV.
template <int kRows, int kOut>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))) inline void gemv_bf16_avx512_block(
    const bf16_t* x_bf16, int64_t x_stride, int64_t in, const bf16_t* weight, int64_t o, float* y, int64_t ldy,
    bool accumulate) {
  const int64_t tail = in % 32;
  const __mmask32 tail_mask = static_cast<__mmask32>((tail == 0) ? 0u : ((1ull << tail) - 1ull));
  __m512 acc[kOut][kRows];
  for (int j = 0; j < kOut; ++j) {
    for (int r = 0; r < kRows; ++r) acc[j][r] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 32 <= in; i += 32) {
    for (int j = 0; j < kOut; ++j) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(weight + (o + j) * in + i);
      for (int r = 0; r < kRows; ++r) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(x_bf16 + r * x_stride + i);
        acc[j][r] = _mm512_dpbf16_ps(acc[j][r], wv, xv);
      }
    }
  }
  if (tail != 0) {
    for (int j = 0; j < kOut; ++j) {
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, weight + (o + j) * in + i);
      for (int r = 0; r < kRows; ++r) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, x_bf16 + r * x_stride + i);
        acc[j][r] = _mm512_dpbf16_ps(acc[j][r], wv, xv);
      }
    }
  }
  for (int j = 0; j < kOut; ++j) {
    for (int r = 0; r < kRows; ++r) {
      const float sum = _mm512_reduce_add_ps(acc[j][r]);
      float& out = y[r * ldy + o + j];
      out = accumulate ? out + sum : sum;
    }
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))) inline __m512bh load_bf16(const bf16_t* p) {
  return (__m512bh)_mm512_loadu_si512(p);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))) void gemv_bf16_avx512_sequential(
    const bf16_t* x_bf16, int64_t in, const bf16_t* weight, int64_t o_begin, int64_t o_end, float* y,
    bool accumulate) {
  const int64_t tail = in % 32;
  const __mmask32 tail_mask = static_cast<__mmask32>((tail == 0) ? 0u : ((1ull << tail) - 1ull));
  for (int64_t o = o_begin; o < o_end; ++o) {
    const bf16_t* w = weight + o * in;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 128 <= in; i += 128) {
      acc0 = _mm512_dpbf16_ps(acc0, load_bf16(w + i), load_bf16(x_bf16 + i));
      acc1 = _mm512_dpbf16_ps(acc1, load_bf16(w + i + 32), load_bf16(x_bf16 + i + 32));
      acc2 = _mm512_dpbf16_ps(acc2, load_bf16(w + i + 64), load_bf16(x_bf16 + i + 64));
      acc3 = _mm512_dpbf16_ps(acc3, load_bf16(w + i + 96), load_bf16(x_bf16 + i + 96));
    }
    for (; i + 32 <= in; i += 32) acc0 = _mm512_dpbf16_ps(acc0, load_bf16(w + i), load_bf16(x_bf16 + i));
    if (tail != 0) {
      acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + i),
                              (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, x_bf16 + i));
    }
    const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
    y[o] = accumulate ? y[o] + sum : sum;
  }
}

template <int kRows>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))) void gemv_bf16_avx512_rows(
    const bf16_t* x_bf16, int64_t x_stride, int64_t in, const bf16_t* weight, int64_t o_begin, int64_t o_end,
    float* y, int64_t ldy, bool accumulate) {
  if constexpr (kRows == 1) {
    gemv_bf16_avx512_sequential(x_bf16, in, weight, o_begin, o_end, y, accumulate);
    return;
  }
  constexpr int kOut = kOutBlock<kRows>;
  int64_t o = o_begin;
  for (; o + kOut <= o_end; o += kOut) {
    gemv_bf16_avx512_block<kRows, kOut>(x_bf16, x_stride, in, weight, o, y, ldy, accumulate);
  }
  for (; o < o_end; ++o) gemv_bf16_avx512_block<kRows, 1>(x_bf16, x_stride, in, weight, o, y, ldy, accumulate);
}

// ---- AVX2 GEMVs (CPUs without AVX-512) -------------------------------------

__attribute__((target("avx2,fma"))) inline float sum_avx2(__m256 x) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 1));
  return _mm_cvtss_f32(sum);
}

// Eight values as f32; bf16 is widened by a 16-bit shift.
__attribute__((target("avx2,fma"))) inline __m256 load_avx2(const bf16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
__attribute__((target("avx2,fma"))) inline __m256 load_avx2(const float* p) { return _mm256_loadu_ps(p); }
inline float to_float(float x) { return x; }
inline float to_float(bf16_t x) { return bf16_to_float(x); }

// The AVX2 GEMV for f32 (T = float) or bf16 (T = bf16_t, x already rounded to
// bf16) weights. One row of x reads W in storage order with four accumulators,
// as the AVX-512 kernels do. Several rows keep one accumulator each per weight
// row.
template <int kRows, typename T>
__attribute__((target("avx2,fma"))) void gemv_avx2_rows(const T* x, int64_t x_stride, int64_t in, const T* weight,
                                                        int64_t o_begin, int64_t o_end, float* y, int64_t ldy,
                                                        bool accumulate) {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const T* w = weight + o * in;
    float sums[kRows];
    int64_t i = 0;
    if constexpr (kRows == 1) {
      __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      for (; i + 32 <= in; i += 32) {
        acc0 = _mm256_fmadd_ps(load_avx2(w + i), load_avx2(x + i), acc0);
        acc1 = _mm256_fmadd_ps(load_avx2(w + i + 8), load_avx2(x + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_avx2(w + i + 16), load_avx2(x + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_avx2(w + i + 24), load_avx2(x + i + 24), acc3);
      }
      for (; i + 8 <= in; i += 8) acc0 = _mm256_fmadd_ps(load_avx2(w + i), load_avx2(x + i), acc0);
      sums[0] = sum_avx2(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    } else {
      __m256 acc[kRows];
      for (int r = 0; r < kRows; ++r) acc[r] = _mm256_setzero_ps();
      for (; i + 8 <= in; i += 8) {
        const __m256 wv = load_avx2(w + i);
        for (int r = 0; r < kRows; ++r) acc[r] = _mm256_fmadd_ps(wv, load_avx2(x + r * x_stride + i), acc[r]);
      }
      for (int r = 0; r < kRows; ++r) sums[r] = sum_avx2(acc[r]);
    }
    for (; i < in; ++i) {
      for (int r = 0; r < kRows; ++r) sums[r] += to_float(w[i]) * to_float(x[r * x_stride + i]);
    }
    for (int r = 0; r < kRows; ++r) y[r * ldy + o] = accumulate ? y[r * ldy + o] + sums[r] : sums[r];
  }
}

// Splits the output rows evenly over the threads and runs kernel(o_begin,
// o_end) on each share.
template <typename Kernel>
void for_output_blocks(int64_t out, int64_t in, const Kernel& kernel) {
  // Matrices below 1 MiB of f32 stay on one thread: they stream from cache in
  // microseconds, less than waking and joining a thread team.
  const bool parallel = !omp_in_parallel() && out * in >= (1 << 18);
  if (!parallel) {
    kernel(int64_t{0}, out);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t thread = omp_get_thread_num();
    const int64_t begin = out * thread / threads;
    const int64_t end = out * (thread + 1) / threads;
    if (begin < end) kernel(begin, end);
  }
}

template <template <int> class Dispatch, typename... Args>
void call_rows(int rows, Args&&... args) {
  switch (rows) {
    case 1: Dispatch<1>::run(args...); break;
    case 2: Dispatch<2>::run(args...); break;
    case 3: Dispatch<3>::run(args...); break;
    default: Dispatch<4>::run(args...); break;
  }
}

template <int kRows>
struct GemvF32 {
  static void run(SimdTarget target, const float* x, int64_t in, const float* weight, int64_t o_begin,
                  int64_t o_end, float* y, int64_t ldy, bool accumulate) {
    switch (target) {
      case SimdTarget::kAvx512:
        gemv_avx512_rows<kRows, float>(x, in, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
      case SimdTarget::kAvx2:
        gemv_avx2_rows<kRows, float>(x, in, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
      case SimdTarget::kScalar:
        gemv_f32_scalar_rows<kRows>(x, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
    }
  }
};

enum class Bf16Path { kNative, kWidenAvx512, kWidenAvx2, kScalar };

template <int kRows>
struct GemvBf16 {
  static void run(Bf16Path path, const bf16_t* x, int64_t x_stride, int64_t in, const bf16_t* weight,
                  int64_t o_begin, int64_t o_end, float* y, int64_t ldy, bool accumulate) {
    switch (path) {
      case Bf16Path::kNative:
        gemv_bf16_avx512_rows<kRows>(x, x_stride, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
      case Bf16Path::kWidenAvx512:
        gemv_avx512_rows<kRows, bf16_t>(x, x_stride, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
      case Bf16Path::kWidenAvx2:
        gemv_avx2_rows<kRows, bf16_t>(x, x_stride, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
      case Bf16Path::kScalar:
        gemv_bf16_scalar_rows<kRows>(x, x_stride, in, weight, o_begin, o_end, y, ldy, accumulate);
        break;
    }
  }
};

}  // namespace

void gemv_f32(const float* x, int64_t n_rows, int64_t in, const float* weight, int64_t out, float* y,
              bool accumulate) {
  const SimdTarget target = active_simd_target();
  for (int64_t r0 = 0; r0 < n_rows; r0 += kMaxRowsPerPass) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxRowsPerPass, n_rows - r0));
    for_output_blocks(out, in, [&](int64_t begin, int64_t end) {
      call_rows<GemvF32>(rows, target, x + r0 * in, in, weight, begin, end, y + r0 * out, out, accumulate);
    });
  }
}

void gemv_bf16(const float* x, int64_t n_rows, int64_t in, const bf16_t* weight, int64_t out, float* y,
               bool accumulate) {
  // NOTE: kWidenAvx512 runs only on AVX-512 CPUs without AVX512_BF16. It shares
  // gemv_avx512_rows with the f32 path, but the tests exercise its bf16 loads
  // only on such a CPU, since ROPEPP_SIMD caps the level, not the extension.
  const SimdTarget target = active_simd_target();
  const bool avx512 = target == SimdTarget::kAvx512;
  const Bf16Path path = avx512 && cpu_features().avx512_bf16 ? Bf16Path::kNative
                        : avx512                             ? Bf16Path::kWidenAvx512
                        : target == SimdTarget::kAvx2        ? Bf16Path::kWidenAvx2
                                                             : Bf16Path::kScalar;
  // Decode calls this once per matrix per token: the scratch grows once and is reused.
  thread_local std::vector<bf16_t> x_bf16;
  if (static_cast<int64_t>(x_bf16.size()) < n_rows * in) x_bf16.resize(n_rows * in);
  for (int64_t i = 0; i < n_rows * in; ++i) x_bf16[i] = float_to_bf16(x[i]);

  for (int64_t r0 = 0; r0 < n_rows; r0 += kMaxRowsPerPass) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxRowsPerPass, n_rows - r0));
    const bf16_t* x_rows = x_bf16.data() + r0 * in;
    for_output_blocks(out, in, [&](int64_t begin, int64_t end) {
      call_rows<GemvBf16>(rows, path, x_rows, in, in, weight, begin, end, y + r0 * out, out, accumulate);
    });
  }
}

bool onednn_bf16_available() {
  return active_simd_target() == SimdTarget::kAvx512 && cpu_features().avx512_bf16;
}

void matmul_bf16_onednn(int64_t m, int64_t n, int64_t k, const bf16_t* a, int64_t a_row_stride,
                        int64_t a_col_stride, const bf16_t* b, int64_t b_row_stride, int64_t b_col_stride,
                        float alpha, float beta, float* c, int64_t ldc) {
  using dnnl::memory;
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  thread_local dnnl::stream stream(engine);

  const memory::desc a_desc({m, k}, memory::data_type::bf16, memory::dims{a_row_stride, a_col_stride});
  const memory::desc b_desc({k, n}, memory::data_type::bf16, memory::dims{b_row_stride, b_col_stride});
  const memory::desc c_desc({m, n}, memory::data_type::f32, memory::dims{ldc, 1});

  dnnl::primitive_attr attributes;
  if (alpha != 1.0f) attributes.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops post_ops;
    post_ops.append_sum(beta);
    attributes.set_post_ops(post_ops);
  }
  // oneDNN keeps a cache of created primitives, so repeated shapes are cheap.
  const dnnl::matmul::primitive_desc descriptor(dnnl::matmul::desc(a_desc, b_desc, c_desc), attributes, engine);
  const dnnl::matmul matmul(descriptor);

  memory a_memory(a_desc, engine, const_cast<bf16_t*>(a));
  memory b_memory(b_desc, engine, const_cast<bf16_t*>(b));
  memory c_memory(c_desc, engine, c);
  matmul.execute(stream, {{DNNL_ARG_SRC, a_memory}, {DNNL_ARG_WEIGHTS, b_memory}, {DNNL_ARG_DST, c_memory}});
  stream.wait();
}

}  // namespace ropepp::kernels_detail
