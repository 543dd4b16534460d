// Row operations of the fused attention softmax, vectorised for the
// instruction set this translation unit is built for. Include only from a
// *.simd.cpp file: it reads ROPEPP_SIMD_TARGET_avx512 / _avx2 to choose the
// intrinsics and falls back to plain float code otherwise.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(ROPEPP_SIMD_TARGET_avx512) || defined(ROPEPP_SIMD_TARGET_avx2)
#include <immintrin.h>
#endif

namespace ropepp {
namespace ROPEPP_SIMD_NS {
namespace vec {

// exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6
// polynomial for exp(r) (the Cephes expf coefficients). The relative error,
// measured against double exp on [-87, 88] for every target, is at most 2 ulp.
// Inputs below -88, including -inf, return 0 (the true value is near or below
// the smallest normal float), so masked scores of -inf drop out.
constexpr float kExpHigh = 88.0f;
constexpr float kExpLow = -88.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f;  // ln 2 split so that n * kLn2High is exact
constexpr float kLn2Low = -2.12194440e-4f;
constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

inline float exp_scalar(float x) {
  x = std::min(std::max(x, kExpLow), kExpHigh);
  // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a
  // libm call (plain SSE2 has no rounding instruction), valid for |x| < 2^22.
  constexpr float kRoundingShift = 12582912.0f;
  const float n = (x * kLog2e + kRoundingShift) - kRoundingShift;
  float r = x - n * kLn2High;
  r = r - n * kLn2Low;
  float p = kExpPoly[0];
  for (int c = 1; c < 6; ++c) p = p * r + kExpPoly[c];
  p = p * r * r + r + 1.0f;
  // n + 127 is in [0, 254]: 0 gives the bit pattern of +0, so exp underflows to 0.
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

#if defined(ROPEPP_SIMD_TARGET_avx512)

constexpr int kLanes = 16;
using Float = __m512;
inline Float load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Float x) { _mm512_storeu_ps(p, x); }
inline Float broadcast(float x) { return _mm512_set1_ps(x); }
inline Float add(Float a, Float b) { return _mm512_add_ps(a, b); }
inline Float sub(Float a, Float b) { return _mm512_sub_ps(a, b); }
inline Float mul(Float a, Float b) { return _mm512_mul_ps(a, b); }
inline Float div(Float a, Float b) { return _mm512_div_ps(a, b); }
inline Float max(Float a, Float b) { return _mm512_max_ps(a, b); }
inline Float mul_add(Float a, Float b, Float c) { return _mm512_fmadd_ps(a, b, c); }
inline float reduce_add(Float x) { return _mm512_reduce_add_ps(x); }
inline float reduce_max(Float x) { return _mm512_reduce_max_ps(x); }

inline Float exp(Float x) {
  x = _mm512_max_ps(_mm512_min_ps(x, broadcast(kExpHigh)), broadcast(kExpLow));
  const Float n = _mm512_roundscale_ps(_mm512_mul_ps(x, broadcast(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  Float r = _mm512_fnmadd_ps(n, broadcast(kLn2High), x);
  r = _mm512_fnmadd_ps(n, broadcast(kLn2Low), r);
  Float p = broadcast(kExpPoly[0]);
  for (int c = 1; c < 6; ++c) p = _mm512_fmadd_ps(p, r, broadcast(kExpPoly[c]));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, broadcast(1.0f)));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

#elif defined(ROPEPP_SIMD_TARGET_avx2)

constexpr int kLanes = 8;
using Float = __m256;
inline Float load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Float x) { _mm256_storeu_ps(p, x); }
inline Float broadcast(float x) { return _mm256_set1_ps(x); }
inline Float add(Float a, Float b) { return _mm256_add_ps(a, b); }
inline Float sub(Float a, Float b) { return _mm256_sub_ps(a, b); }
inline Float mul(Float a, Float b) { return _mm256_mul_ps(a, b); }
inline Float div(Float a, Float b) { return _mm256_div_ps(a, b); }
inline Float max(Float a, Float b) { return _mm256_max_ps(a, b); }
inline Float mul_add(Float a, Float b, Float c) { return _mm256_fmadd_ps(a, b, c); }

inline float reduce_add(Float x) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

inline float reduce_max(Float x) {
  __m128 best = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  best = _mm_max_ps(best, _mm_movehl_ps(best, best));
  best = _mm_max_ss(best, _mm_movehdup_ps(best));
  return _mm_cvtss_f32(best);
}

inline Float exp(Float x) {
  x = _mm256_max_ps(_mm256_min_ps(x, broadcast(kExpHigh)), broadcast(kExpLow));
  const Float n = _mm256_round_ps(_mm256_mul_ps(x, broadcast(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  Float r = _mm256_fnmadd_ps(n, broadcast(kLn2High), x);
  r = _mm256_fnmadd_ps(n, broadcast(kLn2Low), r);
  Float p = broadcast(kExpPoly[0]);
  for (int c = 1; c < 6; ++c) p = _mm256_fmadd_ps(p, r, broadcast(kExpPoly[c]));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, broadcast(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

#else

constexpr int kLanes = 1;
using Float = float;
inline Float load(const float* p) { return *p; }
inline void store(float* p, Float x) { *p = x; }
inline Float broadcast(float x) { return x; }
inline Float add(Float a, Float b) { return a + b; }
inline Float sub(Float a, Float b) { return a - b; }
inline Float mul(Float a, Float b) { return a * b; }
inline Float div(Float a, Float b) { return a / b; }
inline Float max(Float a, Float b) { return std::max(a, b); }
inline Float mul_add(Float a, Float b, Float c) { return a * b + c; }
inline float reduce_add(Float x) { return x; }
inline float reduce_max(Float x) { return x; }
inline Float exp(Float x) { return exp_scalar(x); }

#endif

// ---- Row operations (n >= 0, any alignment) --------------------------------

inline float row_max(const float* x, int64_t n) {
  int64_t e = 0;
  float best = -std::numeric_limits<float>::infinity();
  if (n >= kLanes) {
    Float acc = load(x);
    for (e = kLanes; e + kLanes <= n; e += kLanes) acc = max(acc, load(x + e));
    best = reduce_max(acc);
  }
  for (; e < n; ++e) best = std::max(best, x[e]);
  return best;
}

// Replaces x by exp(x - shift) and returns the sum of the new values.
inline float exp_shifted_sum(float* x, int64_t n, float shift) {
  const Float shift_vector = broadcast(shift);
  Float acc = broadcast(0.0f);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes) {
    const Float value = exp(sub(load(x + e), shift_vector));
    store(x + e, value);
    acc = add(acc, value);
  }
  float sum = reduce_add(acc);
  for (; e < n; ++e) {
    x[e] = exp_scalar(x[e] - shift);
    sum += x[e];
  }
  return sum;
}

inline void scale_row(float* x, int64_t n, float factor) {
  const Float factor_vector = broadcast(factor);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes) store(x + e, mul(load(x + e), factor_vector));
  for (; e < n; ++e) x[e] *= factor;
}

// d_p = p * (d_p - row_dot): the softmax backward of one row.
inline void softmax_backward_row(float* d_p, const float* p, int64_t n, float row_dot) {
  const Float dot_vector = broadcast(row_dot);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes) store(d_p + e, mul(load(p + e), sub(load(d_p + e), dot_vector)));
  for (; e < n; ++e) d_p[e] = p[e] * (d_p[e] - row_dot);
}

inline float dot(const float* a, const float* b, int64_t n) {
  Float acc = broadcast(0.0f);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes) acc = mul_add(load(a + e), load(b + e), acc);
  float sum = reduce_add(acc);
  for (; e < n; ++e) sum += a[e] * b[e];
  return sum;
}

// y += factor * x
inline void add_scaled(float* y, const float* x, int64_t n, float factor) {
  const Float factor_vector = broadcast(factor);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes) store(y + e, mul_add(load(x + e), factor_vector, load(y + e)));
  for (; e < n; ++e) y[e] += factor * x[e];
}

}  // namespace vec
}  // namespace ROPEPP_SIMD_NS
}  // namespace ropepp
