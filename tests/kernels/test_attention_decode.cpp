// attention_forward_cached (decode and chunked prefill) and
// attention_probabilities against the double-precision reference.
//
// Tolerances. The kernel works in f32: queries rotated in double and rounded,
// 64- or 128-term dot products, a polynomial exp2 (relative error < 1e-7) and
// sums over at most ~1000 keys. Rounding errors of random sign grow like the
// square root of the term count, so the observed error stays near 1e-6 of the
// output's scale; kF32Tolerance = 2e-5 leaves a tenfold margin, while an
// indexing or masking error moves outputs by order 1.
//
// A bf16 cache rounds every stored key and value to an 8-bit significand, a
// relative error of at most 2^-9. Against the reference on the unrounded
// inputs, the values contribute up to 2^-9 * max|v| and the rounded keys move
// each score by about 2^-9 times its size (a few units), which the softmax
// passes on to the output; kBF16Units = 8 units of 2^-9 * max|v| covers both.
// The kernel itself is checked tightly on bf16 too, against the reference fed
// with exactly the keys and values the cache holds.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/kv_cache.h"
#include "kernels/simd.h"

namespace ropepp {
namespace {

constexpr double kF32Tolerance = 2e-5;
constexpr double kBF16Units = 8.0;
constexpr double kBF16Epsilon = 1.0 / 512.0;  // 2^-9: half a unit in the last place of an 8-bit significand

std::vector<float> random_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> values(n);
  for (float& x : values) x = static_cast<float>(rng.gaussian());
  return values;
}

double max_abs(const std::vector<double>& x) {
  double m = 0.0;
  for (const double value : x) m = std::max(m, std::abs(value));
  return m;
}

// One cached-attention problem: the queries are the last tokens of (or any
// block inside) a key sequence whose rotated keys and values sit in a cache.
struct DecodeCase {
  Variant variant = Variant::kVanilla;
  int num_attention_heads = 8;  // config counts, before the variant's halving
  int num_key_value_heads = 4;
  int head_dim = 64;
  int64_t n_keys = 1;
  int64_t n_queries = 1;
  int64_t query_offset = -1;  // -1: the queries are the last n_queries keys
  bool causal = true;
  bool segments = false;
  int32_t first_position = 0;
  CacheType type = CacheType::kF32;
  QueryNoise noise;
  RopeScaling scaling;

  std::string describe() const {
    return variant_name(variant) + " H=" + std::to_string(num_attention_heads) +
           " G=" + std::to_string(num_key_value_heads) + " d=" + std::to_string(head_dim) +
           " keys=" + std::to_string(n_keys) + " queries=" + std::to_string(n_queries) +
           " offset=" + std::to_string(query_offset) + (causal ? " causal" : " bidirectional") +
           (segments ? " segments" : "") + " first_position=" + std::to_string(first_position) +
           (type == CacheType::kF32 ? " f32" : " bf16") + (noise.active() ? " noise" : "") +
           " scaling=" + rope_scaling_type_name(scaling.type);
  }
};

// Applies the transpose of the rotation at position in double.
void rotate_back(const RopeTable& rope, int64_t position, const double* x, double* result) {
  const int half = rope.half_dim();
  std::vector<double> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  rope.cos_sin(position, c.data(), s.data());
  const double m2 = rope.magnitude() * rope.magnitude();  // rotate then rotate back scales by magnitude^2
  for (int n = 0; n < half; ++n) {
    result[n] = (x[n] * c[n] + x[n + half] * s[n]) / m2;
    result[n + half] = (x[n + half] * c[n] - x[n] * s[n]) / m2;
  }
}

struct Outputs {
  std::vector<double> out, lse;
};

class DecodeProblem {
 public:
  explicit DecodeProblem(const DecodeCase& c, uint64_t seed = 7)
      : case_(c),
        rope_(RopeParams{c.head_dim, 10000.0, c.scaling}),
        layout_(HeadLayout::from_config(c.variant, c.num_attention_heads, c.num_key_value_heads, c.head_dim)) {
    const int d = c.head_dim;
    offset_ = c.query_offset >= 0 ? c.query_offset : c.n_keys - c.n_queries;
    key_positions_.resize(static_cast<size_t>(c.n_keys));
    key_segments_.resize(static_cast<size_t>(c.n_keys));
    for (int64_t j = 0; j < c.n_keys; ++j) {
      // With segments, documents of 5 tokens whose positions restart at 0.
      key_segments_[j] = c.segments ? static_cast<int32_t>(j / 5) : 0;
      key_positions_[j] = c.first_position + static_cast<int32_t>(c.segments ? j % 5 : j);
    }
    query_positions_.assign(key_positions_.begin() + offset_, key_positions_.begin() + offset_ + c.n_queries);
    query_segments_.assign(key_segments_.begin() + offset_, key_segments_.begin() + offset_ + c.n_queries);

    q_ = random_values(static_cast<size_t>(c.n_queries * layout_.n_query_heads * d), seed);
    k_ = random_values(static_cast<size_t>(c.n_keys * layout_.n_kv_heads * d), seed + 1);
    v_ = random_values(static_cast<size_t>(c.n_keys * layout_.n_kv_heads * d), seed + 2);

    std::vector<float> rotated = k_;
    rope_rotate(rope_, key_positions_.data(), c.n_keys, layout_.n_kv_heads, rotated.data());
    cache_ = KVCache(1, layout_.n_kv_heads, d, c.n_keys, c.type);
    cache_.write(0, 0, c.n_keys, rotated.data(), v_.data());
  }

  AttentionArgs args() const {
    AttentionArgs a;
    a.layout = layout_;
    a.rope = &rope_;
    a.causal = case_.causal;
    a.n_queries = case_.n_queries;
    a.n_keys = case_.n_keys;
    a.query_offset = offset_;
    a.query_positions = query_positions_.data();
    a.key_positions = key_positions_.data();
    if (case_.segments) {
      a.query_segments = query_segments_.data();
      a.key_segments = key_segments_.data();
    }
    a.noise = case_.noise;
    return a;
  }

  Outputs run_cached() const {
    const size_t n_rows = static_cast<size_t>(case_.n_queries * layout_.n_attention_heads());
    std::vector<float> out(n_rows * case_.head_dim, std::nanf("")), lse(n_rows, std::nanf(""));
    attention_forward_cached(args(), q_.data(), cache_.view(0), out.data(), lse.data());
    return {std::vector<double>(out.begin(), out.end()), std::vector<double>(lse.begin(), lse.end())};
  }

  // The reference on the original f32 inputs.
  Outputs run_reference() const {
    return reference(std::vector<double>(k_.begin(), k_.end()), std::vector<double>(v_.begin(), v_.end()));
  }

  // The reference fed with the keys and values the cache holds (bf16-rounded
  // for a bf16 cache): keys are rotated back in double so that the
  // reference's own rotation restores the stored values.
  Outputs run_reference_on_cache() const {
    const int d = case_.head_dim;
    const KVCacheView view = cache_.view(0);
    std::vector<double> keys(k_.size()), values(v_.size()), stored(static_cast<size_t>(d));
    for (int64_t j = 0; j < case_.n_keys; ++j) {
      for (int h = 0; h < layout_.n_kv_heads; ++h) {
        const int64_t at = h * view.head_stride + j * view.token_stride;
        const size_t row = static_cast<size_t>((j * layout_.n_kv_heads + h) * d);
        for (int e = 0; e < d; ++e) {
          if (view.type == CacheType::kF32) {
            stored[e] = static_cast<const float*>(view.keys)[at + e];
            values[row + e] = static_cast<const float*>(view.values)[at + e];
          } else {
            stored[e] = bf16_to_float(static_cast<const bf16_t*>(view.keys)[at + e]);
            values[row + e] = bf16_to_float(static_cast<const bf16_t*>(view.values)[at + e]);
          }
        }
        rotate_back(rope_, key_positions_[j], stored.data(), keys.data() + row);
      }
    }
    return reference(keys, values);
  }

  double max_abs_value() const {
    double m = 0.0;
    for (const float x : v_) m = std::max(m, static_cast<double>(std::abs(x)));
    return m;
  }

  const HeadLayout& layout() const { return layout_; }
  const float* queries() const { return q_.data(); }
  const float* keys() const { return k_.data(); }  // before rotation
  KVCacheView view() const { return cache_.view(0); }

 private:
  Outputs reference(const std::vector<double>& keys, const std::vector<double>& values) const {
    const size_t n_rows = static_cast<size_t>(case_.n_queries * layout_.n_attention_heads());
    Outputs result{std::vector<double>(n_rows * case_.head_dim), std::vector<double>(n_rows)};
    const std::vector<double> q(q_.begin(), q_.end());
    attention_forward_reference(args(), q.data(), keys.data(), values.data(), result.out.data(), result.lse.data());
    return result;
  }

  DecodeCase case_;
  RopeTable rope_;
  HeadLayout layout_;
  int64_t offset_ = 0;
  std::vector<int32_t> key_positions_, key_segments_, query_positions_, query_segments_;
  std::vector<float> q_, k_, v_;
  KVCache cache_;
};

// Checks out within out_tolerance (absolute) and lse within a relative
// tolerance; -inf lse (a query that sees no key) must match exactly, with a
// zero output row.
void expect_close(const Outputs& actual, const Outputs& expected, double out_tolerance, double lse_tolerance,
                  const std::string& label) {
  ASSERT_EQ(actual.out.size(), expected.out.size()) << label;
  double worst = 0.0;
  size_t worst_at = 0;
  for (size_t x = 0; x < actual.out.size(); ++x) {
    const double error = std::abs(actual.out[x] - expected.out[x]);
    if (!(error <= worst)) {
      worst = error;
      worst_at = x;
    }
  }
  EXPECT_LE(worst, out_tolerance) << label << ": output element " << worst_at << " is " << actual.out[worst_at]
                                  << ", reference " << expected.out[worst_at];
  for (size_t r = 0; r < actual.lse.size(); ++r) {
    if (std::isinf(expected.lse[r])) {
      EXPECT_EQ(actual.lse[r], expected.lse[r]) << label << ": lse row " << r;
      continue;
    }
    EXPECT_NEAR(actual.lse[r], expected.lse[r], lse_tolerance * (1.0 + std::abs(expected.lse[r])))
        << label << ": lse row " << r;
  }
}

void check_against_reference(const DecodeCase& c) {
  const DecodeProblem problem(c);
  const Outputs actual = problem.run_cached();
  const std::string label = c.describe();

  const Outputs on_cache = problem.run_reference_on_cache();
  expect_close(actual, on_cache, kF32Tolerance * std::max(1.0, max_abs(on_cache.out)), kF32Tolerance,
               label + " (reference on cache contents)");

  if (c.type == CacheType::kBF16) {
    const Outputs original = problem.run_reference();
    const double tolerance = kBF16Units * kBF16Epsilon * problem.max_abs_value();
    expect_close(actual, original, tolerance, kBF16Units * kBF16Epsilon, label + " (reference on f32 inputs)");
  }
}

// Heads per config as (num_attention_heads, num_key_value_heads): GQA ratios
// 1, 2 and 4 of the attention heads over key/value heads, and one key/value
// head (EH halves both counts, so it needs G = 2 for that).
struct HeadCounts {
  int heads, kv_heads;
};
const HeadCounts kVanillaHeads[] = {{4, 4}, {8, 4}, {8, 2}, {4, 1}};
const HeadCounts kEHHeads[] = {{4, 4}, {8, 4}, {8, 2}, {4, 2}};

TEST(AttentionDecode, MatchesReferenceTable) {
  // Every variant, cache length and storage type; the other axes rotate with
  // a counter so that each value of each axis is met several times.
  const int64_t lengths[] = {1, 7, 64, 129, 1000};
  const int64_t query_counts[] = {1, 2, 5, 8, 20};
  int counter = 0;
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const int64_t length : lengths) {
      for (const CacheType type : {CacheType::kF32, CacheType::kBF16}) {
        ++counter;
        DecodeCase c;
        c.variant = variant;
        const HeadCounts heads = (variant == Variant::kEH ? kEHHeads : kVanillaHeads)[counter % 4];
        c.num_attention_heads = heads.heads;
        c.num_key_value_heads = heads.kv_heads;
        // As the counter advances, each cache type meets both head sizes.
        c.head_dim = (counter / 2) % 2 == 0 ? 64 : 128;
        c.n_keys = length;
        c.n_queries = std::min(length, query_counts[counter % 5]);
        c.type = type;
        c.causal = counter % 3 != 2;
        if (!c.causal) c.query_offset = (length - c.n_queries) / 2;  // a block in the middle
        c.segments = counter % 4 == 1;
        c.first_position = (counter % 3) * 3000;
        if (counter % 7 == 3) c.noise = QueryNoise{counter % 2 == 0 ? NoiseSide::kReal : NoiseSide::kImaginary, 0.5, 11};
        if (c.noise.side == NoiseSide::kImaginary && variant == Variant::kVanilla) c.noise.side = NoiseSide::kReal;
        check_against_reference(c);
      }
    }
  }
}

TEST(AttentionDecode, EverySimdTargetMatchesReference) {
  for (const SimdTarget target : {SimdTarget::kScalar, SimdTarget::kAvx2, SimdTarget::kAvx512}) {
    if (!simd_target_supported(target)) {
      std::printf("SIMD target %s is not supported here; skipped\n", simd_target_name(target));
      continue;
    }
    const ScopedSimdTarget scoped(target);
    for (const CacheType type : {CacheType::kF32, CacheType::kBF16}) {
      DecodeCase c;
      c.variant = Variant::kEC;
      c.head_dim = 128;
      c.n_keys = 300;
      c.n_queries = 3;
      c.type = type;
      SCOPED_TRACE(simd_target_name(target));
      check_against_reference(c);

      // 144 columns: a wide slice of the value pass, then single vectors.
      c.head_dim = 144;
      c.n_keys = 70;
      check_against_reference(c);

      // An odd head_dim leaves a tail after the last full vector.
      c.variant = Variant::kVanilla;
      c.head_dim = 18;
      c.n_keys = 45;
      c.n_queries = 11;
      c.segments = true;
      check_against_reference(c);
    }
  }
}

TEST(AttentionDecode, QueryWithoutVisibleKeyGivesZero) {
  // Bidirectional with segments: the query's segment id does not occur among
  // the keys, so it sees nothing.
  const RopeTable rope(RopeParams{8, 10000.0, {}});
  const HeadLayout layout = HeadLayout::from_config(Variant::kEC, 2, 1, 8);
  const int64_t n_keys = 40;
  std::vector<int32_t> positions(n_keys), key_segments(n_keys, 1);
  for (int64_t j = 0; j < n_keys; ++j) positions[j] = static_cast<int32_t>(j);
  const int32_t query_position = 39, query_segment = 2;
  const std::vector<float> keys = random_values(n_keys * 8, 3), q = random_values(2 * 8, 4);
  KVCache cache(1, 1, 8, n_keys, CacheType::kF32);
  cache.write(0, 0, n_keys, keys.data(), keys.data());

  AttentionArgs args;
  args.layout = layout;
  args.rope = &rope;
  args.causal = false;
  args.n_queries = 1;
  args.n_keys = n_keys;
  args.query_offset = n_keys - 1;
  args.query_positions = &query_position;
  args.query_segments = &query_segment;
  args.key_segments = key_segments.data();
  std::vector<float> out(4 * 8, 1.0f), lse(4, 0.0f);
  attention_forward_cached(args, q.data(), cache.view(0), out.data(), lse.data());
  for (const float x : out) EXPECT_EQ(x, 0.0f);
  for (const float x : lse) EXPECT_EQ(x, -std::numeric_limits<float>::infinity());
}

// Decodes a whole sequence one token at a time through a KVCache and compares
// every step with row t of one reference prefill over the sequence.
void check_token_by_token(Variant variant, const RopeScaling& scaling, CacheType type) {
  const int d = 64, length = 40;
  const RopeTable rope(RopeParams{d, 10000.0, scaling});
  const HeadLayout layout = HeadLayout::from_config(variant, 8, 4, d);
  const int n_heads = layout.n_attention_heads();
  std::vector<int32_t> positions(length);
  for (int t = 0; t < length; ++t) positions[t] = 4000 + t;  // past the 4096 YaRN ramp once t > 95
  const std::vector<float> q = random_values(length * layout.n_query_heads * d, 21);
  const std::vector<float> k = random_values(length * layout.n_kv_heads * d, 22);
  const std::vector<float> v = random_values(length * layout.n_kv_heads * d, 23);

  const AttentionArgs whole = self_attention_args(layout, rope, length, positions.data());
  std::vector<double> expected(static_cast<size_t>(length * n_heads * d)), expected_lse(length * n_heads);
  {
    const std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
    attention_forward_reference(whole, qd.data(), kd.data(), vd.data(), expected.data(), expected_lse.data());
  }

  KVCache cache(1, layout.n_kv_heads, d, length, type);
  std::vector<float> key_row(static_cast<size_t>(layout.n_kv_heads * d));
  std::vector<float> out(static_cast<size_t>(n_heads * d)), lse(n_heads);
  const double out_tolerance = type == CacheType::kF32 ? kF32Tolerance * 4.0 : kBF16Units * kBF16Epsilon * 4.5;
  const double lse_tolerance = type == CacheType::kF32 ? kF32Tolerance : kBF16Units * kBF16Epsilon;
  for (int t = 0; t < length; ++t) {
    std::copy_n(k.begin() + t * layout.n_kv_heads * d, key_row.size(), key_row.begin());
    rope_rotate(rope, positions.data() + t, 1, layout.n_kv_heads, key_row.data());
    cache.write(0, t, 1, key_row.data(), v.data() + t * layout.n_kv_heads * d);
    cache.set_length(t + 1);

    AttentionArgs step;
    step.layout = layout;
    step.rope = &rope;
    step.n_queries = 1;
    step.n_keys = cache.length();
    step.query_offset = t;
    step.query_positions = positions.data() + t;
    attention_forward_cached(step, q.data() + t * layout.n_query_heads * d, cache.view(0), out.data(), lse.data());

    for (int x = 0; x < n_heads * d; ++x) {
      ASSERT_NEAR(out[x], expected[t * n_heads * d + x], out_tolerance)
          << variant_name(variant) << " " << rope_scaling_type_name(scaling.type) << " step " << t << " element " << x;
    }
    for (int h = 0; h < n_heads; ++h) {
      const double reference = expected_lse[t * n_heads + h];
      ASSERT_NEAR(lse[h], reference, lse_tolerance * (1.0 + std::abs(reference))) << "step " << t << " head " << h;
    }
  }
}

TEST(AttentionDecode, TokenByTokenMatchesPrefill) {
  // 4.5 units of 2^-9 cover a bf16 value (max |v| of 40 x 256 normal samples
  // is about 4.5) in the bf16 tolerance of check_token_by_token.
  std::vector<RopeScaling> scalings(4);
  scalings[1].type = RopeScalingType::kLinear;
  scalings[1].factor = 8.0;
  scalings[2].type = RopeScalingType::kYarnPaper;
  scalings[2].factor = 32.0;
  scalings[3].type = RopeScalingType::kYarnHF;
  scalings[3].factor = 8.0;
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const RopeScaling& scaling : scalings) check_token_by_token(variant, scaling, CacheType::kF32);
    check_token_by_token(variant, scalings[2], CacheType::kBF16);
  }
}

TEST(AttentionDecode, ChunkedPrefillMatchesReference) {
  // One causal prefill over 150 tokens against the same sequence fed in blocks
  // of 37 queries at growing offsets, each block seeing only the cache prefix
  // written so far (its own keys included).
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const bool segments : {false, true}) {
      DecodeCase whole;
      whole.variant = variant;
      whole.head_dim = 64;
      whole.n_keys = 150;
      whole.n_queries = 150;
      whole.query_offset = 0;
      whole.segments = segments;
      const DecodeProblem problem(whole);
      const Outputs expected = problem.run_reference();
      const HeadLayout& layout = problem.layout();
      const int n_heads = layout.n_attention_heads();
      const int d = whole.head_dim;

      for (int64_t start = 0; start < whole.n_keys; start += 37) {
        const int64_t n = std::min<int64_t>(37, whole.n_keys - start);
        AttentionArgs block = problem.args();
        block.n_queries = n;
        block.n_keys = start + n;
        block.query_offset = start;
        block.query_positions += start;
        if (segments) block.query_segments += start;
        std::vector<float> out(static_cast<size_t>(n * n_heads * d)), lse(static_cast<size_t>(n * n_heads));
        attention_forward_cached(block, problem.queries() + start * layout.n_query_heads * d, problem.view(),
                                 out.data(), lse.data());

        const double tolerance = kF32Tolerance * std::max(1.0, max_abs(expected.out));
        for (int64_t x = 0; x < n * n_heads * d; ++x) {
          ASSERT_NEAR(out[x], expected.out[start * n_heads * d + x], tolerance)
              << variant_name(variant) << " block at " << start << " element " << x;
        }
        for (int64_t r = 0; r < n * n_heads; ++r) {
          const double reference = expected.lse[start * n_heads + r];
          ASSERT_NEAR(lse[r], reference, kF32Tolerance * (1.0 + std::abs(reference)))
              << variant_name(variant) << " block at " << start << " lse row " << r;
        }
      }
    }
  }
}

TEST(AttentionDecode, ResultDoesNotDependOnThreadCount) {
  DecodeCase c;
  c.variant = Variant::kEH;
  c.head_dim = 128;
  c.n_keys = 5000;  // long enough to be split into several key chunks
  const DecodeProblem problem(c);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Outputs one = problem.run_cached();
  omp_set_num_threads(std::max(2, threads));
  const Outputs several = problem.run_cached();
  omp_set_num_threads(threads);
  // Chunks change the order of f32 sums, so results agree to rounding only.
  expect_close(several, one, kF32Tolerance * std::max(1.0, max_abs(one.out)), kF32Tolerance, "1 vs 2 threads");
}

// A NaN or infinity in the cache must reach the output of every head that
// reads it, as in the reference, so a diverged model is not hidden.
TEST(AttentionDecode, NonFiniteCacheEntriesPropagate) {
  const int d = 16;
  const int64_t n_keys = 300;  // more than one chunk and one key block
  const RopeTable rope(RopeParams{d, 10000.0, {}});
  const HeadLayout layout = HeadLayout::from_config(Variant::kEH, 4, 2, d);
  const int n_heads = layout.n_attention_heads();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> q = random_values(layout.n_query_heads * d, 31);
  const int32_t position = static_cast<int32_t>(n_keys - 1);

  struct Case {
    const char* what;
    bool in_key;
    float value;
    int64_t token;
  };
  for (const CacheType type : {CacheType::kF32, CacheType::kBF16}) {
    for (const Case& c : {Case{"NaN key", true, nan, 7}, Case{"NaN value", false, nan, 7},
                          Case{"NaN key at the end", true, nan, n_keys - 1}, Case{"inf value", false, inf, 100},
                          Case{"NaN key in a later block", true, nan, 290}}) {
      SCOPED_TRACE(std::string(c.what) + (type == CacheType::kF32 ? " f32" : " bf16"));
      std::vector<float> keys = random_values(n_keys * layout.n_kv_heads * d, 32);
      std::vector<float> values = random_values(n_keys * layout.n_kv_heads * d, 33);
      // Element 3 of key/value head 0 at token c.token.
      (c.in_key ? keys : values)[c.token * layout.n_kv_heads * d + 3] = c.value;
      KVCache cache(1, layout.n_kv_heads, d, n_keys, type);
      cache.write(0, 0, n_keys, keys.data(), values.data());

      AttentionArgs args;
      args.layout = layout;
      args.rope = &rope;
      args.n_queries = 1;
      args.n_keys = n_keys;
      args.query_offset = n_keys - 1;
      args.query_positions = &position;
      std::vector<float> out(static_cast<size_t>(n_heads * d)), lse(n_heads);
      attention_forward_cached(args, q.data(), cache.view(0), out.data(), lse.data());
      // The EH layout of 4 query and 2 key/value heads leaves one key/value head, read by every head.
      ASSERT_EQ(layout.n_kv_heads, 1);
      for (int h = 0; h < n_heads; ++h) {
        const bool reads_head_0 = layout.kv_head_of(h) == 0;
        // A NaN key poisons every output element; a bad value only its own element.
        const int element = c.in_key ? 0 : 3;
        EXPECT_EQ(std::isfinite(out[h * d + element]), !reads_head_0) << "head " << h << " = " << out[h * d + element];
        if (c.in_key) {
          EXPECT_TRUE(std::isnan(lse[h])) << "head " << h << " lse " << lse[h];
        }
      }
    }
  }
}

TEST(AttentionDecode, RejectsInvalidCacheView) {
  DecodeCase c;
  c.n_keys = 10;
  const DecodeProblem problem(c);
  const AttentionArgs args = problem.args();
  std::vector<float> out(static_cast<size_t>(problem.layout().n_attention_heads() * c.head_dim)), lse(16);

  KVCacheView missing = problem.view();
  missing.values = nullptr;
  EXPECT_THROW(attention_forward_cached(args, problem.queries(), missing, out.data(), lse.data()), Error);

  KVCacheView narrow = problem.view();
  narrow.token_stride = c.head_dim - 1;
  EXPECT_THROW(attention_forward_cached(args, problem.queries(), narrow, out.data(), lse.data()), Error);

  AttentionArgs too_many_queries = args;
  too_many_queries.n_queries = 11;  // causal: 11 queries cannot end inside 10 keys
  too_many_queries.query_offset = 0;
  EXPECT_THROW(attention_forward_cached(too_many_queries, problem.queries(), problem.view(), out.data(), lse.data()),
               Error);

  AttentionArgs empty = args;
  empty.n_keys = 0;
  EXPECT_THROW(attention_forward_cached(empty, problem.queries(), problem.view(), out.data(), lse.data()), Error);
}

// ---- attention_probabilities ------------------------------------------------

TEST(AttentionProbabilities, MatchReferenceAndRespectMask) {
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    DecodeCase c;
    c.variant = variant;
    c.head_dim = 16;
    c.n_keys = 23;
    c.n_queries = 23;
    c.query_offset = 0;
    c.segments = true;
    if (variant != Variant::kVanilla) c.noise = QueryNoise{NoiseSide::kImaginary, 0.3, 5};
    const DecodeProblem problem(c);
    const AttentionArgs args = problem.args();
    const HeadLayout& layout = problem.layout();
    const int n_heads = layout.n_attention_heads();

    std::vector<int> heads;
    for (int h = n_heads - 1; h >= 0; h -= 2) heads.push_back(h);  // out of order, skipping some
    std::vector<float> probs(heads.size() * c.n_queries * c.n_keys, std::nanf(""));
    attention_probabilities(args, problem.queries(), problem.keys(), heads, probs.data());

    const std::vector<double> q(problem.queries(), problem.queries() + c.n_queries * layout.n_query_heads * 16);
    const std::vector<double> k(problem.keys(), problem.keys() + c.n_keys * layout.n_kv_heads * 16);
    std::vector<double> out(static_cast<size_t>(c.n_queries * n_heads * 16));
    std::vector<double> expected(static_cast<size_t>(n_heads * c.n_queries * c.n_keys));
    attention_forward_reference(args, q.data(), k.data(), k.data(), out.data(), nullptr, expected.data());

    for (size_t a = 0; a < heads.size(); ++a) {
      for (int64_t i = 0; i < c.n_queries; ++i) {
        double sum = 0.0;
        for (int64_t j = 0; j < c.n_keys; ++j) {
          const float p = probs[(a * c.n_queries + i) * c.n_keys + j];
          sum += p;
          // Rounding to f32 is the only difference from the reference.
          EXPECT_NEAR(p, expected[(heads[a] * c.n_queries + i) * c.n_keys + j], 1e-6)
              << variant_name(variant) << " head " << heads[a] << " query " << i << " key " << j;
          if (!args.visible(i, j)) {
            EXPECT_EQ(p, 0.0f) << "masked key " << j << " of query " << i;
          }
        }
        EXPECT_NEAR(sum, 1.0, 1e-5) << variant_name(variant) << " head " << heads[a] << " query " << i;
      }
    }
  }
}

TEST(AttentionProbabilities, RejectsInvalidHead) {
  DecodeCase c;
  c.n_keys = 4;
  c.n_queries = 4;
  c.query_offset = 0;
  const DecodeProblem problem(c);
  std::vector<float> probs(16);
  const int n_heads = problem.layout().n_attention_heads();
  EXPECT_THROW(attention_probabilities(problem.args(), problem.queries(), problem.keys(), {n_heads}, probs.data()),
               Error);
  EXPECT_THROW(attention_probabilities(problem.args(), problem.queries(), problem.keys(), {-1}, probs.data()), Error);
  AttentionArgs no_positions = problem.args();
  no_positions.key_positions = nullptr;
  EXPECT_THROW(attention_probabilities(no_positions, problem.queries(), problem.keys(), {0}, probs.data()), Error);
}

}  // namespace
}  // namespace ropepp
