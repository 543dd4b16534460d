// The fused prefill kernels against the double-precision reference, for every
// variant, over a table of shapes, masks, offsets and segments, under each
// SIMD target this CPU runs.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/simd.h"

namespace ropepp {
namespace {

struct PrefillCase {
  Variant variant = Variant::kVanilla;
  int num_attention_heads = 2;  // config values, before the variant's split
  int num_key_value_heads = 1;
  int head_dim = 64;
  int64_t n_queries = 1;
  int64_t n_keys = 1;
  int64_t query_offset = 0;
  bool causal = true;
  bool segments = false;
  NoiseSide noise = NoiseSide::kNone;
  RopeScalingType scaling = RopeScalingType::kNone;

  std::string name() const {
    std::string result = fmt::format("{} H={} G={} d={} queries={} keys={} offset={} {}", variant_name(variant),
                                     num_attention_heads, num_key_value_heads, head_dim, n_queries, n_keys,
                                     query_offset, causal ? "causal" : "bidirectional");
    if (segments) result += " segments";
    if (noise == NoiseSide::kReal) result += " noise-real";
    if (noise == NoiseSide::kImaginary) result += " noise-imaginary";
    if (scaling != RopeScalingType::kNone) {
      result += " ";
      result += rope_scaling_type_name(scaling);
    }
    return result;
  }
};

std::vector<float> random_normal(Rng& rng, size_t n, double stddev) {
  std::vector<float> values(n);
  for (float& value : values) value = static_cast<float>(stddev * rng.gaussian());
  return values;
}

std::vector<double> widen(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

double max_abs(const std::vector<double>& x) {
  double result = 0.0;
  for (double value : x) result = std::max(result, std::abs(value));
  return result;
}

// Largest |fused - reference| over entries where the reference is finite;
// an entry where exactly one of the two is -inf counts as infinite error.
double max_abs_error(const std::vector<float>& fused, const std::vector<double>& reference) {
  double result = 0.0;
  for (size_t e = 0; e < fused.size(); ++e) {
    const bool reference_finite = std::isfinite(reference[e]);
    const bool fused_finite = std::isfinite(fused[e]);
    if (!reference_finite && !fused_finite && (reference[e] < 0) == (fused[e] < 0)) continue;
    if (reference_finite != fused_finite) return std::numeric_limits<double>::infinity();
    result = std::max(result, std::abs(static_cast<double>(fused[e]) - reference[e]));
  }
  return result;
}

// Inputs and reference results of one case.
struct CaseData {
  HeadLayout layout;
  RopeTable rope{RopeParams{}};
  std::vector<int32_t> key_positions, query_positions, key_segments, query_segments;
  std::vector<float> q, k, v, d_out;
  std::vector<double> out, lse, d_q, d_k, d_v;

  AttentionArgs args(const PrefillCase& c) const {
    AttentionArgs result;
    result.layout = layout;
    result.rope = &rope;
    result.causal = c.causal;
    result.n_queries = c.n_queries;
    result.n_keys = c.n_keys;
    result.query_offset = c.query_offset;
    result.query_positions = query_positions.data();
    result.key_positions = key_positions.data();
    if (c.segments) {
      result.query_segments = query_segments.data();
      result.key_segments = key_segments.data();
    }
    result.noise.side = c.noise;
    result.noise.stddev = c.noise == NoiseSide::kNone ? 0.0 : 0.7;
    result.noise.seed = 99;
    return result;
  }
};

CaseData make_case(const PrefillCase& c, uint64_t seed) {
  CaseData data;
  data.layout = HeadLayout::from_config(c.variant, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
  RopeParams params;
  params.head_dim = c.head_dim;
  params.scaling.type = c.scaling;
  params.scaling.factor = c.scaling == RopeScalingType::kNone ? 1.0 : 8.0;
  data.rope = RopeTable(params);

  Rng rng(seed);
  // Documents of random lengths, with positions restarting at 0 in each one.
  // Without segments, positions start at a random value up to 5000, as in a
  // continued sequence.
  int32_t segment = 0;
  int32_t position = c.segments ? 0 : static_cast<int32_t>(rng.below(5000));
  for (int64_t j = 0; j < c.n_keys; ++j) {
    if (c.segments && j > 0 && rng.below(40) == 0) {
      ++segment;
      position = 0;
    }
    data.key_segments.push_back(segment);
    data.key_positions.push_back(position++);
  }
  for (int64_t i = 0; i < c.n_queries; ++i) {
    const int64_t j = std::min(c.query_offset + i, c.n_keys - 1);
    data.query_positions.push_back(data.key_positions[static_cast<size_t>(j)]);
    data.query_segments.push_back(data.key_segments[static_cast<size_t>(j)]);
  }
  if (c.segments && c.n_queries > 2) {
    // A segment that no key has: this query attends to nothing, so its lse is -inf.
    data.query_segments[static_cast<size_t>(c.n_queries / 2)] = -5;
  }

  const HeadLayout& layout = data.layout;
  const size_t d = static_cast<size_t>(c.head_dim);
  data.q = random_normal(rng, static_cast<size_t>(c.n_queries * layout.n_query_heads) * d, 1.5);
  data.k = random_normal(rng, static_cast<size_t>(c.n_keys * layout.n_kv_heads) * d, 1.0);
  data.v = random_normal(rng, static_cast<size_t>(c.n_keys * layout.n_kv_heads) * d, 1.0);
  data.d_out = random_normal(rng, static_cast<size_t>(c.n_queries * layout.n_attention_heads()) * d, 1.0);

  const AttentionArgs args = data.args(c);
  data.out.resize(data.d_out.size());
  data.lse.resize(static_cast<size_t>(c.n_queries * layout.n_attention_heads()));
  const std::vector<double> q = widen(data.q), k = widen(data.k), v = widen(data.v);
  attention_forward_reference(args, q.data(), k.data(), v.data(), data.out.data(), data.lse.data());
  data.d_q.resize(data.q.size());
  data.d_k.resize(data.k.size());
  data.d_v.resize(data.v.size());
  attention_backward_reference(args, q.data(), k.data(), v.data(), widen(data.d_out).data(), data.d_q.data(),
                               data.d_k.data(), data.d_v.data());
  return data;
}

std::vector<SimdTarget> supported_targets() {
  std::vector<SimdTarget> targets;
  for (SimdTarget target : {SimdTarget::kScalar, SimdTarget::kAvx2, SimdTarget::kAvx512}) {
    if (simd_target_supported(target)) targets.push_back(target);
  }
  return targets;
}

// Tolerances, relative to the largest reference magnitude of each output.
// Inputs are rounded to f32 (relative 6e-8), scores are f32 dot products of
// head_dim terms, and each output sums up to n_keys f32 terms. Rounding errors
// therefore grow roughly like sqrt(head_dim) and sqrt(n_keys) times the unit
// roundoff, and exp() turns an absolute score error into the same relative
// error of a probability. The largest errors seen over the table, under every
// SIMD target, are about 1e-6 for out and lse and 1.6e-6 for the gradients, so
// the bounds leave a margin of about 10x.
constexpr double kForwardTolerance = 1e-5;
constexpr double kLseTolerance = 2e-5;  // relative to max(1, max |lse|)
// The backward sums over queries as well (dk, dv) and multiplies two rounded
// quantities in dS = P * (dP - D), where dP - D cancels. Where it cancels
// exactly (a query with one visible key) the reference dq and dk are 0 and
// the rounding left over is of the size of the dO . v terms, that is of dv, so
// dq and dk are compared relative to max(|reference|, max |dv|).
constexpr double kBackwardTolerance = 2e-5;

void check_case(const PrefillCase& c, uint64_t seed) {
  SCOPED_TRACE(c.name());
  const CaseData data = make_case(c, seed);
  const AttentionArgs args = data.args(c);
  const double out_scale = std::max(1e-30, max_abs(data.out));

  for (SimdTarget target : supported_targets()) {
    SCOPED_TRACE(simd_target_name(target));
    ScopedSimdTarget forced(target);

    std::vector<float> out(data.out.size()), lse(data.lse.size());
    attention_forward(args, data.q.data(), data.k.data(), data.v.data(), out.data(), lse.data());
    EXPECT_LE(max_abs_error(out, data.out), kForwardTolerance * out_scale) << "output";
    EXPECT_LE(max_abs_error(lse, data.lse), kLseTolerance * std::max(1.0, max_abs(data.lse))) << "lse";

    std::vector<float> d_q(data.d_q.size()), d_k(data.d_k.size()), d_v(data.d_v.size());
    attention_backward(args, data.q.data(), data.k.data(), data.v.data(), out.data(), lse.data(), data.d_out.data(),
                       d_q.data(), d_k.data(), d_v.data());
    const double d_v_scale = std::max(1e-30, max_abs(data.d_v));
    EXPECT_LE(max_abs_error(d_q, data.d_q), kBackwardTolerance * std::max(d_v_scale, max_abs(data.d_q))) << "d_q";
    EXPECT_LE(max_abs_error(d_k, data.d_k), kBackwardTolerance * std::max(d_v_scale, max_abs(data.d_k))) << "d_k";
    EXPECT_LE(max_abs_error(d_v, data.d_v), kBackwardTolerance * d_v_scale) << "d_v";
    // ROPEPP_PRINT_ERRORS=1 prints the relative errors behind the tolerances.
    if (std::getenv("ROPEPP_PRINT_ERRORS") != nullptr) {
      fmt::print("ERR {} {} out {:.2e} lse {:.2e} dq {:.2e} dk {:.2e} dv {:.2e}\n", c.name(), simd_target_name(target),
                 max_abs_error(out, data.out) / out_scale, max_abs_error(lse, data.lse),
                 max_abs_error(d_q, data.d_q) / std::max(d_v_scale, max_abs(data.d_q)),
                 max_abs_error(d_k, data.d_k) / std::max(d_v_scale, max_abs(data.d_k)),
                 max_abs_error(d_v, data.d_v) / d_v_scale);
    }
  }
}

// Config head counts (num_attention_heads, num_key_value_heads) for a GQA ratio.
// EH halves both, so it needs even counts, and its n_kv_heads = 1 comes from 2.
struct HeadCounts {
  int attention;
  int key_value;
};

HeadCounts head_counts(Variant variant, int ratio, bool single_kv_head) {
  const int key_value = variant == Variant::kEH ? 2 : (single_kv_head ? 1 : 2);
  return {key_value * ratio, key_value};
}

bool long_tests_enabled() {
  const char* value = std::getenv("ROPEPP_LONG_TESTS");
  return value != nullptr && std::string(value) == "1";
}

// One case of the product, chosen by the axis values.
PrefillCase table_case(Variant variant, int head_dim, int ratio, bool single_kv_head, int64_t length, bool causal,
                       int64_t extra_keys, bool segments) {
  const HeadCounts counts = head_counts(variant, ratio, single_kv_head);
  PrefillCase c;
  c.variant = variant;
  c.num_attention_heads = counts.attention;
  c.num_key_value_heads = counts.key_value;
  c.head_dim = head_dim;
  c.n_queries = length;
  c.n_keys = length + extra_keys;
  // Causal queries sit at the end of the keys, as in chunked prefill.
  // Bidirectional ones may sit anywhere, here in the middle.
  c.query_offset = causal ? extra_keys : extra_keys / 2;
  c.causal = causal;
  c.segments = segments;
  return c;
}

TEST(AttentionPrefill, MatchesReferenceTable) {
  // Every variant and every length, with the other axes rotating at periods
  // 2, 3, 4 and 5 so that their values meet in many combinations. The full
  // product runs with ROPEPP_LONG_TESTS=1.
  const Variant variants[] = {Variant::kVanilla, Variant::kEH, Variant::kEC};
  const int64_t lengths[] = {1, 7, 64, 129, 1000};
  const int head_dims[] = {64, 128};
  const int ratios[] = {1, 2, 4};
  const int64_t extra_keys[] = {0, 37, 300};
  int counter = 0;
  for (Variant variant : variants) {
    for (int64_t length : lengths) {
      for (bool causal : {true, false}) {
        ++counter;
        // Long sequences keep few heads so the double reference stays quick.
        const int ratio = length >= 1000 ? 1 + counter % 2 : ratios[counter % 3];
        const int64_t extra = length >= 1000 ? (counter % 2) * 37 : extra_keys[counter % 3];
        const PrefillCase c = table_case(variant, head_dims[(counter / 2) % 2], ratio, counter % 4 == 1, length,
                                         causal, extra, counter % 5 == 1 || counter % 5 == 3);
        check_case(c, 1000 + static_cast<uint64_t>(counter));
      }
    }
  }
}

TEST(AttentionPrefill, MatchesReferenceFullProduct) {
  if (!long_tests_enabled()) GTEST_SKIP() << "set ROPEPP_LONG_TESTS=1 to run the full product of cases";
  int counter = 0;
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (int head_dim : {64, 128}) {
      for (int ratio : {1, 2, 4}) {
        for (bool single_kv_head : {false, true}) {
          if (single_kv_head && variant == Variant::kEH) continue;  // EH reaches one kv head through G = 2
          for (int64_t length : {1, 7, 64, 129, 1000}) {
            for (bool causal : {true, false}) {
              for (int64_t extra : {0, 37}) {
                for (bool segments : {false, true}) {
                  const PrefillCase c =
                      table_case(variant, head_dim, ratio, single_kv_head, length, causal, extra, segments);
                  check_case(c, 5000 + static_cast<uint64_t>(++counter));
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(AttentionPrefill, NoiseAblationMatchesReference) {
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (NoiseSide side : {NoiseSide::kReal, NoiseSide::kImaginary}) {
      if (side == NoiseSide::kImaginary && variant == Variant::kVanilla) continue;
      PrefillCase c = table_case(variant, 64, 2, false, 70, true, 20, false);
      c.noise = side;
      check_case(c, 77);
    }
  }
}

TEST(AttentionPrefill, ScaledRopeMatchesReference) {
  for (RopeScalingType scaling : {RopeScalingType::kLinear, RopeScalingType::kYarnPaper, RopeScalingType::kYarnHF}) {
    PrefillCase c = table_case(Variant::kEC, 64, 2, true, 90, true, 0, false);
    c.scaling = scaling;
    check_case(c, 78);
  }
}

TEST(AttentionPrefill, QueryWithoutVisibleKeyIsZero) {
  PrefillCase c = table_case(Variant::kEH, 64, 2, false, 9, false, 5, true);
  const CaseData data = make_case(c, 5);
  const AttentionArgs args = data.args(c);
  const int n_heads = data.layout.n_attention_heads();
  std::vector<float> out(data.out.size(), 1.0f), lse(data.lse.size());
  attention_forward(args, data.q.data(), data.k.data(), data.v.data(), out.data(), lse.data());

  const int64_t blind_query = c.n_queries / 2;  // make_case gives it a segment no key has
  for (int head = 0; head < n_heads; ++head) {
    EXPECT_EQ(lse[static_cast<size_t>(blind_query * n_heads + head)], -std::numeric_limits<float>::infinity());
    for (int e = 0; e < c.head_dim; ++e) {
      EXPECT_EQ(out[static_cast<size_t>((blind_query * n_heads + head) * c.head_dim + e)], 0.0f);
    }
  }

  std::vector<float> d_q(data.q.size(), 1.0f), d_k(data.k.size()), d_v(data.v.size());
  attention_backward(args, data.q.data(), data.k.data(), data.v.data(), out.data(), lse.data(), data.d_out.data(),
                     d_q.data(), d_k.data(), d_v.data());
  for (size_t e = 0; e < d_q.size(); ++e) ASSERT_TRUE(std::isfinite(d_q[e]));
  const size_t query_row = static_cast<size_t>(blind_query * data.layout.n_query_heads * c.head_dim);
  for (int e = 0; e < data.layout.n_query_heads * c.head_dim; ++e) EXPECT_EQ(d_q[query_row + e], 0.0f);
}

TEST(AttentionPrefill, ThreadCountDoesNotChangeForward) {
  // Each forward tile is computed by one thread in a fixed order, so out and
  // lse must be bit-identical with one thread and with several.
  const PrefillCase c = table_case(Variant::kEC, 64, 2, false, 300, true, 0, false);
  const CaseData data = make_case(c, 11);
  const AttentionArgs args = data.args(c);
  std::vector<float> out_single(data.out.size()), lse_single(data.lse.size());
  std::vector<float> out_many(data.out.size()), lse_many(data.lse.size());

  const int threads = omp_get_max_threads();
  omp_set_num_threads(std::max(2, threads));
  attention_forward(args, data.q.data(), data.k.data(), data.v.data(), out_many.data(), lse_many.data());
  omp_set_num_threads(1);
  attention_forward(args, data.q.data(), data.k.data(), data.v.data(), out_single.data(), lse_single.data());
  omp_set_num_threads(threads);

  EXPECT_EQ(out_single, out_many);
  EXPECT_EQ(lse_single, lse_many);
}

TEST(AttentionPrefill, ForwardWithoutLseMatches) {
  const PrefillCase c = table_case(Variant::kEH, 64, 2, false, 70, true, 0, true);
  const CaseData data = make_case(c, 12);
  const AttentionArgs args = data.args(c);
  std::vector<float> out_with_lse(data.out.size()), out_without_lse(data.out.size()), lse(data.lse.size());
  attention_forward(args, data.q.data(), data.k.data(), data.v.data(), out_with_lse.data(), lse.data());
  attention_forward(args, data.q.data(), data.k.data(), data.v.data(), out_without_lse.data(), nullptr);
  EXPECT_EQ(out_with_lse, out_without_lse);
}

TEST(AttentionPrefill, InvalidArgumentsRaise) {
  RopeParams params;
  params.head_dim = 64;
  const RopeTable rope(params);
  std::vector<float> buffer(64 * 64, 0.5f);
  std::vector<int32_t> positions(64, 0);

  // Head counts that do not divide, odd head_dim, EH with an odd head count.
  EXPECT_THROW(HeadLayout::from_config(Variant::kVanilla, 6, 4, 64), Error);
  EXPECT_THROW(HeadLayout::from_config(Variant::kEC, 8, 3, 64), Error);
  EXPECT_THROW(HeadLayout::from_config(Variant::kVanilla, 8, 4, 63), Error);
  EXPECT_THROW(HeadLayout::from_config(Variant::kEH, 6, 3, 64), Error);

  const HeadLayout layout = HeadLayout::from_config(Variant::kEC, 4, 2, 64);
  AttentionArgs args = self_attention_args(layout, rope, 8, positions.data());
  std::vector<float> out(64 * 64), lse(64);
  EXPECT_NO_THROW(attention_forward(args, buffer.data(), buffer.data(), buffer.data(), out.data(), lse.data()));

  AttentionArgs empty = args;
  empty.n_queries = 0;
  EXPECT_THROW(attention_forward(empty, buffer.data(), buffer.data(), buffer.data(), out.data(), lse.data()), Error);
  empty = args;
  empty.n_keys = 0;
  EXPECT_THROW(attention_backward(empty, buffer.data(), buffer.data(), buffer.data(), out.data(), lse.data(),
                                  buffer.data(), out.data(), out.data(), out.data()),
               Error);

  AttentionArgs too_few_keys = args;
  too_few_keys.query_offset = 4;  // causal queries 4..11 of only 8 keys
  EXPECT_THROW(attention_forward(too_few_keys, buffer.data(), buffer.data(), buffer.data(), out.data(), lse.data()),
               Error);

  AttentionArgs no_key_positions = args;
  no_key_positions.key_positions = nullptr;
  EXPECT_THROW(
      attention_forward(no_key_positions, buffer.data(), buffer.data(), buffer.data(), out.data(), lse.data()),
      Error);

  AttentionArgs wrong_table = args;
  RopeParams other_params;
  other_params.head_dim = 128;
  const RopeTable other_rope(other_params);
  wrong_table.rope = &other_rope;
  EXPECT_THROW(attention_forward(wrong_table, buffer.data(), buffer.data(), buffer.data(), out.data(), lse.data()),
               Error);
}

TEST(SimdTarget, ForcingUnsupportedTargetRaises) {
  const SimdTarget best = best_simd_target();
  {
    ScopedSimdTarget forced(SimdTarget::kScalar);
    EXPECT_EQ(active_simd_target(), SimdTarget::kScalar);
  }
  EXPECT_EQ(active_simd_target(), best);
  if (best != SimdTarget::kAvx512) {
    EXPECT_THROW(ScopedSimdTarget forced(SimdTarget::kAvx512), Error);
  }
  EXPECT_THROW(parse_simd_target("sse"), Error);
}

}  // namespace
}  // namespace ropepp
