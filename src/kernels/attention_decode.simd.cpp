// The inner loop of cached attention (decode and chunked prefill), compiled once
// per instruction set. One call streams the keys and values of one key/value
// head once and serves every prepared query row of that head: the real and the
// imaginary head of each query head and all query heads of the GQA group.
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsic
// headers (on their _mm512_undefined_* placeholders) once they are inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/bf16.h"
#include "kernels/attention_decode.h"

namespace ropepp::ROPEPP_SIMD_NS {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Taylor coefficients of 2^f = e^(f ln 2), ln(2)^k / k!, for |f| <= 1/2. The
// truncation error after degree 7 is below 6e-9, under f32's rounding.
constexpr float kExp2Coefficients[8] = {1.0f,
                                        0.6931471805599453f,
                                        0.2402265069591007f,
                                        0.05550410866482158f,
                                        0.009618129107628477f,
                                        0.0013333558146428443f,
                                        0.00015403530393381608f,
                                        1.525273380405984e-05f};

#if defined(ROPEPP_SIMD_TARGET_avx512)

constexpr int kWidth = 16;
using Vec = __m512;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vset(float x) { return _mm512_set1_ps(x); }
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, Vec x) { _mm512_storeu_ps(p, x); }
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec vsub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmax(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline float vreduce_add(Vec x) { return _mm512_reduce_add_ps(x); }
inline float vreduce_max(Vec x) { return _mm512_reduce_max_ps(x); }
// out[0..3] = the sums of a, b, c and d, sharing one shuffle tree.
inline void vreduce4(Vec a, Vec b, Vec c, Vec d, float* out) {
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  // Each 128-bit lane now contains partial sums [a, b, c, d].
  const __m512 lanes = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(lanes), _mm512_extractf32x8_ps(lanes, 1));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1)));
}
inline Vec vload_bf16(const bf16_t* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
inline Vec vround(Vec x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 2^n for integral n in [-126, 127], added into the exponent field of p.
inline Vec vscale_pow2(Vec p, Vec n) {
  const __m512i shift = _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), shift));
}
// Zero where x is -inf (a masked score), result elsewhere.
inline Vec vzero_where_neg_inf(Vec x, Vec result) {
  const __mmask16 finite = _mm512_cmp_ps_mask(x, vset(kNegInf), _CMP_NEQ_OQ);
  return _mm512_maskz_mov_ps(finite, result);
}

#elif defined(ROPEPP_SIMD_TARGET_avx2)

constexpr int kWidth = 8;
using Vec = __m256;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vset(float x) { return _mm256_set1_ps(x); }
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, Vec x) { _mm256_storeu_ps(p, x); }
inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec vsub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vmax(Vec a, Vec b) { return _mm256_max_ps(a, b); }
inline float vreduce_add(Vec x) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 1));
  return _mm_cvtss_f32(sum);
}
inline float vreduce_max(Vec x) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}
inline void vreduce4(Vec a, Vec b, Vec c, Vec d, float* out) {
  const __m256 ab = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
  const __m256 cd = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
  const __m256 lanes = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(lanes), _mm256_extractf128_ps(lanes, 1)));
}
inline Vec vload_bf16(const bf16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
inline Vec vround(Vec x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline Vec vscale_pow2(Vec p, Vec n) {
  const __m256i shift = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), shift));
}
inline Vec vzero_where_neg_inf(Vec x, Vec result) {
  return _mm256_and_ps(_mm256_cmp_ps(x, vset(kNegInf), _CMP_NEQ_OQ), result);
}

#else  // scalar

constexpr int kWidth = 1;
using Vec = float;
inline Vec vzero() { return 0.0f; }
inline Vec vset(float x) { return x; }
inline Vec vload(const float* p) { return *p; }
inline void vstore(float* p, Vec x) { *p = x; }
inline Vec vadd(Vec a, Vec b) { return a + b; }
inline Vec vsub(Vec a, Vec b) { return a - b; }
inline Vec vmul(Vec a, Vec b) { return a * b; }
inline Vec vfma(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec vmax(Vec a, Vec b) { return std::max(a, b); }
inline float vreduce_add(Vec x) { return x; }
inline float vreduce_max(Vec x) { return x; }
inline void vreduce4(Vec a, Vec b, Vec c, Vec d, float* out) {
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}
inline Vec vload_bf16(const bf16_t* p) { return bf16_to_float(*p); }
inline Vec vround(Vec x) { return std::nearbyint(x); }
inline Vec vscale_pow2(Vec p, Vec n) { return std::ldexp(p, static_cast<int>(n)); }
inline Vec vzero_where_neg_inf(Vec x, Vec result) { return x == kNegInf ? 0.0f : result; }

#endif

static_assert(kDecodeKeyBlock % kWidth == 0 && kDecodeKeyBlock % 4 == 0,
              "a key block must be whole vectors and whole groups of 4 keys");

// 2^x elementwise; exactly 0 where x is -inf. Inputs below -126 are clamped
// there, so results under 2^-126 come out as about 2^-126 instead of a
// subnormal, which no softmax sum can notice.
inline Vec vexp2(Vec x) {
  const Vec clamped = vmax(x, vset(-126.0f));
  const Vec n = vround(clamped);
  const Vec f = vsub(clamped, n);
  Vec p = vset(kExp2Coefficients[7]);
  for (int k = 6; k >= 0; --k) p = vfma(p, f, vset(kExp2Coefficients[k]));
  return vzero_where_neg_inf(x, vscale_pow2(p, n));
}

void scale_in_place(float* y, float alpha, int n) {
  const Vec a = vset(alpha);
  int e = 0;
  for (; e + kWidth <= n; e += kWidth) vstore(y + e, vmul(a, vload(y + e)));
  for (; e < n; ++e) y[e] *= alpha;
}

// One vector of a cache row stored as float or bf16.
inline Vec vload_row(const float* p) { return vload(p); }
inline Vec vload_row(const bf16_t* p) { return vload_bf16(p); }
inline float to_float(float x) { return x; }
inline float to_float(bf16_t x) { return bf16_to_float(x); }

// Points rows[jj] at row block_begin + jj of one cache head as stored, for
// jj < n_keys, and rows up to the next multiple of 4 at row 0 (as gather_rows).
template <typename T>
void point_rows(const DecodeChunk& chunk, const void* base, int64_t block_begin, int n_keys, const T** rows) {
  for (int jj = 0; jj < n_keys; ++jj) rows[jj] = static_cast<const T*>(base) + (block_begin + jj) * chunk.token_stride;
  for (int jj = n_keys; jj % 4 != 0; ++jj) rows[jj] = rows[0];
}

// Points rows[jj] at the f32 row of token block_begin + jj of one cache head,
// for jj < n_keys: in place for an f32 cache, converted into buffer
// ([kDecodeKeyBlock][head_dim]) for a bf16 one. Rows from n_keys up to the
// next multiple of 4 repeat row 0, so groups of 4 keys never read past the
// chunk. The scores of those padding rows are masked.
void gather_rows(const DecodeChunk& chunk, const void* base, int64_t block_begin, int n_keys, float* buffer,
                 const float** rows) {
  const int d = chunk.head_dim;
  for (int jj = 0; jj < n_keys; ++jj) {
    const int64_t at = (block_begin + jj) * chunk.token_stride;
    if (chunk.type == CacheType::kF32) {
      rows[jj] = static_cast<const float*>(base) + at;
      continue;
    }
    const bf16_t* source = static_cast<const bf16_t*>(base) + at;
    float* row = buffer + static_cast<int64_t>(jj) * d;
    int e = 0;
    for (; e + kWidth <= d; e += kWidth) vstore(row + e, vload_bf16(source + e));
    for (; e < d; ++e) row[e] = bf16_to_float(source[e]);
    rows[jj] = row;
  }
  for (int jj = n_keys; jj % 4 != 0; ++jj) rows[jj] = rows[0];
}

// Adds the dot products of query rows q0 and q1 with four keys to s0[0..3]
// and s1[0..3]. Both rows share every key load. Each key row is read front to
// back before the next, because reading the four rows side by side (512 bytes
// apart for head_dim 128) ran the key pass at about half the read bandwidth.
inline void score_two_rows(const float* q0, const float* q1, const float* const* keys, int d, float* s0, float* s1) {
  Vec a[4], b[4];
  int tail_begin = 0;
  for (int t = 0; t < 4; ++t) {
    const float* k = keys[t];
    // Two partial sums per row halve the FMA chains' latency per key.
    Vec a_even = vzero(), a_odd = vzero(), b_even = vzero(), b_odd = vzero();
    int e = 0;
    for (; e + 2 * kWidth <= d; e += 2 * kWidth) {
      const Vec k_even = vload(k + e), k_odd = vload(k + e + kWidth);
      a_even = vfma(vload(q0 + e), k_even, a_even);
      a_odd = vfma(vload(q0 + e + kWidth), k_odd, a_odd);
      b_even = vfma(vload(q1 + e), k_even, b_even);
      b_odd = vfma(vload(q1 + e + kWidth), k_odd, b_odd);
    }
    if (e + kWidth <= d) {
      const Vec k_even = vload(k + e);
      a_even = vfma(vload(q0 + e), k_even, a_even);
      b_even = vfma(vload(q1 + e), k_even, b_even);
      e += kWidth;
    }
    a[t] = vadd(a_even, a_odd);
    b[t] = vadd(b_even, b_odd);
    tail_begin = e;
  }
  vreduce4(a[0], a[1], a[2], a[3], s0);
  vreduce4(b[0], b[1], b[2], b[3], s1);
  for (int e = tail_begin; e < d; ++e) {
    for (int t = 0; t < 4; ++t) {
      s0[t] += q0[e] * keys[t][e];
      s1[t] += q1[e] * keys[t][e];
    }
  }
}

// score_block for head_dim = kVectors * kWidth: both query rows stay in
// registers, so a key costs kVectors loads instead of three times as many,
// which matters once several row pairs share a block (RoPE++EC's real and
// imaginary rows) and the loads, not memory, set the pace.
template <int kVectors, typename T>
void score_block_in_registers(const DecodeChunk& chunk, const T* const* keys, int n_keys) {
  const int d = chunk.head_dim;
  float discard[4];
  for (int r = 0; r < chunk.n_rows; r += 2) {
    const bool pair = r + 1 < chunk.n_rows;
    const float* q0 = chunk.rows + static_cast<int64_t>(r) * d;
    const float* q1 = pair ? q0 + d : q0;
    Vec x[kVectors], y[kVectors];
#pragma GCC unroll 16
    for (int u = 0; u < kVectors; ++u) {
      x[u] = vload(q0 + u * kWidth);
      y[u] = vload(q1 + u * kWidth);
    }
    float* s0 = chunk.scores + r * kDecodeKeyBlock;
    float* s1 = pair ? s0 + kDecodeKeyBlock : nullptr;
    for (int jj = 0; jj < n_keys; jj += 4) {
      Vec a[4], b[4];
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const T* k = keys[jj + t];
        Vec a_even = vzero(), a_odd = vzero(), b_even = vzero(), b_odd = vzero();
#pragma GCC unroll 16
        for (int u = 0; u < kVectors; u += 2) {
          const Vec k_even = vload_row(k + u * kWidth), k_odd = vload_row(k + (u + 1) * kWidth);
          a_even = vfma(x[u], k_even, a_even);
          a_odd = vfma(x[u + 1], k_odd, a_odd);
          b_even = vfma(y[u], k_even, b_even);
          b_odd = vfma(y[u + 1], k_odd, b_odd);
        }
        a[t] = vadd(a_even, a_odd);
        b[t] = vadd(b_even, b_odd);
      }
      vreduce4(a[0], a[1], a[2], a[3], s0 + jj);
      vreduce4(b[0], b[1], b[2], b[3], pair ? s1 + jj : discard);
    }
  }
}

// Two query rows of 8 vectors and the accumulators fit in AVX-512's 32
// registers: head_dim 64 and 128 there.
inline bool keys_fit_registers(int head_dim) { return kWidth == 16 && (head_dim == 64 || head_dim == 128); }

template <typename T>
void score_block_in_registers(const DecodeChunk& chunk, const T* const* keys, int n_keys) {
  if (chunk.head_dim == 128) {
    score_block_in_registers<8, T>(chunk, keys, n_keys);
  } else {
    score_block_in_registers<4, T>(chunk, keys, n_keys);
  }
}

// scores[r][jj] = rows[r] . keys[jj] for every row and key of the block, two
// rows and four keys at a time; an odd last row is paired with itself.
void score_block(const DecodeChunk& chunk, const float* const* keys, int n_keys) {
  const int d = chunk.head_dim;
  float discard[4];
  for (int r = 0; r < chunk.n_rows; r += 2) {
    const bool pair = r + 1 < chunk.n_rows;
    const float* q0 = chunk.rows + static_cast<int64_t>(r) * d;
    const float* q1 = pair ? q0 + d : q0;
    float* s0 = chunk.scores + r * kDecodeKeyBlock;
    float* s1 = pair ? s0 + kDecodeKeyBlock : nullptr;
    for (int jj = 0; jj < n_keys; jj += 4) {
      score_two_rows(q0, q1, keys + jj, d, s0 + jj, pair ? s1 + jj : discard);
    }
  }
}

// Adds the weighted value rows to columns [e_begin, e_end) of acc0 and acc1
// (two query rows), kVectors vectors per row at a time, with the accumulators
// in registers across the block. Returns the first column not handled, since
// e_end is rounded down to whole slices.
template <int kVectors, typename T>
int accumulate_slices(const T* const* values, int n_keys, const float* p0, const float* p1, float* acc0,
                      float* acc1, bool pair, int e_begin, int e_end) {
  constexpr int kSlice = kVectors * kWidth;
  int e = e_begin;
  for (; e + kSlice <= e_end; e += kSlice) {
    Vec x[kVectors], y[kVectors];
#pragma GCC unroll 16
    for (int u = 0; u < kVectors; ++u) {
      x[u] = vload(acc0 + e + u * kWidth);
      y[u] = vload(acc1 + e + u * kWidth);
    }
    for (int jj = 0; jj < n_keys; ++jj) {
      // A zero weight is a masked key: skipped, as the reference does, so
      // that a non-finite value behind the mask cannot leak in.
      if (p0[jj] == 0.0f && p1[jj] == 0.0f) continue;
      const T* v = values[jj] + e;
      Vec row[kVectors];
#pragma GCC unroll 16
      for (int u = 0; u < kVectors; ++u) row[u] = vload_row(v + u * kWidth);
      if (p0[jj] != 0.0f) {
        const Vec w = vset(p0[jj]);
#pragma GCC unroll 16
        for (int u = 0; u < kVectors; ++u) x[u] = vfma(w, row[u], x[u]);
      }
      if (p1[jj] != 0.0f) {
        const Vec w = vset(p1[jj]);
#pragma GCC unroll 16
        for (int u = 0; u < kVectors; ++u) y[u] = vfma(w, row[u], y[u]);
      }
    }
#pragma GCC unroll 16
    for (int u = 0; u < kVectors; ++u) {
      vstore(acc0 + e + u * kWidth, x[u]);
      if (pair) vstore(acc1 + e + u * kWidth, y[u]);
    }
  }
  return e;
}

// Vectors per slice in the wide pass of accumulate_block: a 128-float head row
// in one slice with AVX-512 (2 x 8 accumulators and 8 loaded values of the 32
// registers), 32 floats with AVX2's 16 registers. One slice per head row reads
// each value row front to back. Narrower slices visit every row of the block
// once per slice, 512 bytes apart, which hardware prefetchers follow poorly.
constexpr int kWideVectors = kWidth == 16 ? 8 : (kWidth == 8 ? 4 : 1);

// acc[r] += sum over keys of p[r][jj] * values[jj]. Two rows at a time share
// each value load: wide slices first, then single vectors, then scalar columns.
template <typename T>
void accumulate_block(const DecodeChunk& chunk, const T* const* values, int n_keys) {
  const int d = chunk.head_dim;
  for (int r = 0; r < chunk.n_rows; r += 2) {
    const bool pair = r + 1 < chunk.n_rows;
    float* acc0 = chunk.acc + static_cast<int64_t>(r) * d;
    float* acc1 = pair ? acc0 + d : acc0;
    const float* p0 = chunk.scores + r * kDecodeKeyBlock;
    // An odd last row pairs with all-zero weights, which add nothing.
    static constexpr float kZeros[kDecodeKeyBlock] = {};
    const float* p1 = pair ? p0 + kDecodeKeyBlock : kZeros;
    int e = accumulate_slices<kWideVectors, T>(values, n_keys, p0, p1, acc0, acc1, pair, 0, d);
    e = accumulate_slices<1, T>(values, n_keys, p0, p1, acc0, acc1, pair, e, d);
    for (int row = 0; row < (pair ? 2 : 1); ++row) {
      float* acc = row == 0 ? acc0 : acc1;
      const float* probs = row == 0 ? p0 : p1;
      for (int f = e; f < d; ++f) {
        float sum = acc[f];
        for (int jj = 0; jj < n_keys; ++jj) {
          if (probs[jj] != 0.0f) sum += probs[jj] * to_float(values[jj][f]);
        }
        acc[f] = sum;
      }
    }
  }
}

// Sets masked scores of one row to -inf: keys past the row's causal limit, keys
// of other segments, and the unused tail of a short block.
void mask_row(const DecodeChunk& chunk, int r, int64_t block_begin, int n_keys, float* scores) {
  const int64_t limit = chunk.key_limits[r] - block_begin;
  const int visible_end = static_cast<int>(std::clamp<int64_t>(limit, 0, n_keys));
  for (int jj = visible_end; jj < kDecodeKeyBlock; ++jj) scores[jj] = kNegInf;
  if (chunk.row_segments == nullptr) return;
  const int32_t segment = chunk.row_segments[r];
  for (int jj = 0; jj < visible_end; ++jj) {
    if (chunk.key_segments[block_begin + jj] != segment) scores[jj] = kNegInf;
  }
}

// Online-softmax update of one row with a block of scores, which are replaced
// by their unnormalised probabilities 2^(s - max).
//
// A NaN or +inf score (from a non-finite key or query) makes the reference
// softmax NaN. vmax drops NaN on x86 and vexp2 clamps it away, so such a block
// is detected here and marks the row NaN through row_max, which merge_chunks
// turns into a NaN output row instead of silently skipping the key.
void update_row(const DecodeChunk& chunk, int r, float* scores) {
  const int d = chunk.head_dim;
  // Branch-free, so that the compiler vectorizes it: 1 for NaN and +inf, 0 for -inf and finite scores.
  unsigned non_finite = std::isnan(chunk.row_max[r]) ? 1u : 0u;
  for (int jj = 0; jj < kDecodeKeyBlock; ++jj) {
    non_finite |= static_cast<unsigned>(!(scores[jj] < -kNegInf) & (scores[jj] != kNegInf));
  }
  if (non_finite != 0u) {
    chunk.row_max[r] = std::numeric_limits<float>::quiet_NaN();
    for (int jj = 0; jj < kDecodeKeyBlock; ++jj) scores[jj] = 0.0f;
    return;
  }

  Vec max_vector = vset(kNegInf);
  for (int jj = 0; jj < kDecodeKeyBlock; jj += kWidth) max_vector = vmax(max_vector, vload(scores + jj));
  const float block_max = vreduce_max(max_vector);
  if (block_max == kNegInf) {
    // Nothing visible in this block; subtracting a -inf max would give NaN.
    for (int jj = 0; jj < kDecodeKeyBlock; ++jj) scores[jj] = 0.0f;
    return;
  }

  const float old_max = chunk.row_max[r];
  const float new_max = std::max(old_max, block_max);
  const Vec shift = vset(new_max);
  Vec sum_vector = vzero();
  for (int jj = 0; jj < kDecodeKeyBlock; jj += kWidth) {
    const Vec p = vexp2(vsub(vload(scores + jj), shift));
    vstore(scores + jj, p);
    sum_vector = vadd(sum_vector, p);
  }

  const float correction = std::exp2(old_max - new_max);  // 0 while the row has seen no key
  if (correction != 1.0f) scale_in_place(chunk.acc + static_cast<int64_t>(r) * d, correction, d);
  chunk.row_sum[r] = chunk.row_sum[r] * correction + vreduce_add(sum_vector);
  chunk.row_max[r] = new_max;
}

// Key blocks between the block being read and the one prefetched; 2 and 4
// measured no better than 1 at 32k cached tokens.
constexpr int kPrefetchBlocks = 1;

// Asks for the cache lines of tokens [begin, end) of one head ahead of use.
void prefetch_tokens(const DecodeChunk& chunk, const void* base, int64_t begin, int64_t end) {
  if (begin >= end) return;
  const int64_t element = chunk.type == CacheType::kF32 ? 4 : 2;
  const char* first = static_cast<const char*>(base) + begin * chunk.token_stride * element;
  const char* last = static_cast<const char*>(base) + ((end - 1) * chunk.token_stride + chunk.head_dim) * element;
  for (const char* line = first; line < last; line += 64) __builtin_prefetch(line, 0, 3);
}

}  // namespace

void decode_chunk(const DecodeChunk& chunk) {
  const int d = chunk.head_dim;
  const int n_rows = chunk.n_rows;
  for (int r = 0; r < n_rows; ++r) {
    chunk.row_max[r] = kNegInf;
    chunk.row_sum[r] = 0.0f;
    std::fill(chunk.acc + static_cast<int64_t>(r) * d, chunk.acc + static_cast<int64_t>(r + 1) * d, 0.0f);
  }

  // A bf16 cache is read in place where the kernels load bf16 themselves and
  // converted block by block into f32 rows otherwise.
  const bool bf16 = chunk.type == CacheType::kBF16;
  const bool keys_in_registers = keys_fit_registers(d);
  const float* rows[kDecodeKeyBlock];
  const bf16_t* rows_bf16[kDecodeKeyBlock];
  for (int64_t block = chunk.key_begin; block < chunk.key_end; block += kDecodeKeyBlock) {
    const int n_keys = static_cast<int>(std::min<int64_t>(kDecodeKeyBlock, chunk.key_end - block));

    const int64_t next_begin = block + kPrefetchBlocks * kDecodeKeyBlock;
    const int64_t next_end = std::min<int64_t>(next_begin + kDecodeKeyBlock, chunk.key_end);
    prefetch_tokens(chunk, chunk.keys, next_begin, next_end);

    // 1. Scores: each key row is read (and converted) once for all query rows.
    if (keys_in_registers && bf16) {
      point_rows(chunk, chunk.keys, block, n_keys, rows_bf16);
      score_block_in_registers<bf16_t>(chunk, rows_bf16, n_keys);
    } else if (keys_in_registers) {
      point_rows(chunk, chunk.keys, block, n_keys, rows);
      score_block_in_registers<float>(chunk, rows, n_keys);
    } else {
      gather_rows(chunk, chunk.keys, block, n_keys, chunk.block_buffer, rows);
      score_block(chunk, rows, n_keys);
    }

    // 2. Masks and the online-softmax update, row by row.
    for (int r = 0; r < n_rows; ++r) {
      float* scores = chunk.scores + r * kDecodeKeyBlock;
      mask_row(chunk, r, block, n_keys, scores);
      update_row(chunk, r, scores);
    }

    // 3. Weighted values, likewise read once for all query rows.
    prefetch_tokens(chunk, chunk.values, next_begin, next_end);
    if (bf16) {
      point_rows(chunk, chunk.values, block, n_keys, rows_bf16);
      accumulate_block<bf16_t>(chunk, rows_bf16, n_keys);
    } else {
      point_rows(chunk, chunk.values, block, n_keys, rows);
      accumulate_block<float>(chunk, rows, n_keys);
    }
  }
}

}  // namespace ropepp::ROPEPP_SIMD_NS
