// The double-precision reference attention: its backward against central
// finite differences, the head layout of the three variants, masks, chunking
// and the noise ablation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention.h"

namespace ropepp {
namespace {

using Vector = std::vector<double>;

Vector random_vector(Rng& rng, size_t n) {
  Vector x(n);
  for (double& value : x) value = rng.gaussian();
  return x;
}

RopeTable make_table(int head_dim, RopeScalingType type = RopeScalingType::kNone) {
  RopeParams params;
  params.head_dim = head_dim;
  params.scaling.type = type;
  params.scaling.factor = type == RopeScalingType::kNone ? 1.0 : 16.0;
  return RopeTable(params);
}

// Small problem with its own positions and segments.
struct Problem {
  HeadLayout layout;
  RopeTable rope;
  std::vector<int32_t> key_positions, query_positions, key_segments, query_segments;
  AttentionArgs args;

  Problem(const HeadLayout& head_layout, RopeScalingType scaling, int64_t n_queries, int64_t n_keys,
          int64_t query_offset, bool causal, bool segments)
      : layout(head_layout), rope(make_table(head_layout.head_dim, scaling)) {
    for (int64_t j = 0; j < n_keys; ++j) {
      key_positions.push_back(static_cast<int32_t>(segments ? j % 4 : 3000 + j));
      key_segments.push_back(static_cast<int32_t>(segments ? j / 4 : 0));
    }
    for (int64_t i = 0; i < n_queries; ++i) {
      const size_t j = static_cast<size_t>(std::min(query_offset + i, n_keys - 1));
      query_positions.push_back(key_positions[j]);
      query_segments.push_back(key_segments[j]);
    }
    args.layout = layout;
    args.rope = &rope;
    args.causal = causal;
    args.n_queries = n_queries;
    args.n_keys = n_keys;
    args.query_offset = query_offset;
    args.query_positions = query_positions.data();
    args.key_positions = key_positions.data();
    if (segments) {
      args.query_segments = query_segments.data();
      args.key_segments = key_segments.data();
    }
  }

  size_t q_size() const { return static_cast<size_t>(args.n_queries * layout.n_query_heads * layout.head_dim); }
  size_t kv_size() const { return static_cast<size_t>(args.n_keys * layout.n_kv_heads * layout.head_dim); }
  size_t out_size() const {
    return static_cast<size_t>(args.n_queries * layout.n_attention_heads() * layout.head_dim);
  }
  size_t lse_size() const { return static_cast<size_t>(args.n_queries * layout.n_attention_heads()); }
};

// sum(weights * out): a scalar loss whose gradient with respect to out is weights.
double weighted_output(const AttentionArgs& args, const Vector& q, const Vector& k, const Vector& v,
                       const Vector& weights) {
  Vector out(weights.size());
  Vector lse(static_cast<size_t>(args.n_queries * args.layout.n_attention_heads()));
  attention_forward_reference(args, q.data(), k.data(), v.data(), out.data(), lse.data());
  double loss = 0.0;
  for (size_t e = 0; e < out.size(); ++e) loss += weights[e] * out[e];
  return loss;
}

// Checks one gradient against central differences of the loss, for every input element.
// With step h = 1e-5 the truncation error is about h^2 |f'''| ~ 1e-10 and the
// rounding error about 1e-16 |loss| / h ~ 1e-10 (loss is O(1..10)), so 1e-7
// relative to the largest gradient entry is a bound with a wide margin that a
// wrong sign, index or missing term still breaks by orders of magnitude.
void expect_gradient_matches(const char* name, const AttentionArgs& args, Vector& input, const Vector& gradient,
                             const std::function<double()>& loss) {
  constexpr double kStep = 1e-5;
  double scale = 1e-3;
  for (double value : gradient) scale = std::max(scale, std::abs(value));
  for (size_t e = 0; e < input.size(); ++e) {
    const double saved = input[e];
    input[e] = saved + kStep;
    const double up = loss();
    input[e] = saved - kStep;
    const double down = loss();
    input[e] = saved;
    EXPECT_NEAR(gradient[e], (up - down) / (2.0 * kStep), 1e-7 * scale) << name << "[" << e << "]";
  }
}

struct GradientCase {
  Variant variant;
  int heads;
  int kv_heads;
  int64_t n_queries;
  int64_t n_keys;
  int64_t query_offset;
  bool causal;
  bool segments;
  NoiseSide noise;
  RopeScalingType scaling;
};

TEST(AttentionReference, BackwardMatchesFiniteDifferences) {
  const GradientCase cases[] = {
      {Variant::kVanilla, 4, 2, 5, 5, 0, true, false, NoiseSide::kNone, RopeScalingType::kNone},
      {Variant::kEH, 4, 2, 3, 7, 4, true, false, NoiseSide::kImaginary, RopeScalingType::kNone},
      {Variant::kEC, 2, 1, 4, 6, 1, false, true, NoiseSide::kReal, RopeScalingType::kYarnPaper},
      {Variant::kEC, 4, 2, 6, 6, 0, true, true, NoiseSide::kNone, RopeScalingType::kYarnHF},
  };
  for (const GradientCase& c : cases) {
    SCOPED_TRACE(variant_name(c.variant));
    const HeadLayout layout = HeadLayout::from_config(c.variant, c.heads, c.kv_heads, 8);
    Problem problem(layout, c.scaling, c.n_queries, c.n_keys, c.query_offset, c.causal, c.segments);
    problem.args.noise = {c.noise, c.noise == NoiseSide::kNone ? 0.0 : 0.5, 4};

    Rng rng(21);
    Vector q = random_vector(rng, problem.q_size());
    Vector k = random_vector(rng, problem.kv_size());
    Vector v = random_vector(rng, problem.kv_size());
    const Vector weights = random_vector(rng, problem.out_size());
    Vector d_q(q.size()), d_k(k.size()), d_v(v.size());
    attention_backward_reference(problem.args, q.data(), k.data(), v.data(), weights.data(), d_q.data(), d_k.data(),
                                 d_v.data());

    const auto loss = [&] { return weighted_output(problem.args, q, k, v, weights); };
    expect_gradient_matches("d_q", problem.args, q, d_q, loss);
    expect_gradient_matches("d_k", problem.args, k, d_k, loss);
    expect_gradient_matches("d_v", problem.args, v, d_v, loss);
  }
}

TEST(AttentionReference, ImaginaryHeadIsVanillaHeadWithTurnedQuery) {
  // RoPE++ head 2i + 1 scores with -rotate_half(R q_i). Rotation and
  // rotate_half commute (both multiply each complex pair), so this equals
  // vanilla attention whose query 2i + 1 is -rotate_half(q_i) before rotation.
  // A vanilla layout with 2H query heads then reproduces the whole RoPE++
  // output, including the head order and the key/value head of each head.
  for (Variant variant : {Variant::kEH, Variant::kEC}) {
    const HeadLayout layout = HeadLayout::from_config(variant, 4, 2, 16);
    HeadLayout vanilla;
    vanilla.n_query_heads = layout.n_attention_heads();
    vanilla.n_kv_heads = layout.n_kv_heads;
    vanilla.head_dim = layout.head_dim;
    Problem plus(layout, RopeScalingType::kNone, 9, 9, 0, true, false);
    Problem plain(vanilla, RopeScalingType::kNone, 9, 9, 0, true, false);

    Rng rng(5);
    const Vector q = random_vector(rng, plus.q_size());
    const Vector k = random_vector(rng, plus.kv_size());
    const Vector v = random_vector(rng, plus.kv_size());
    const int d = layout.head_dim, half = d / 2;
    Vector q_doubled(plain.q_size());
    for (int64_t i = 0; i < 9; ++i) {
      for (int h = 0; h < layout.n_query_heads; ++h) {
        const double* source = q.data() + (i * layout.n_query_heads + h) * d;
        double* real = q_doubled.data() + (i * vanilla.n_query_heads + 2 * h) * d;
        double* imaginary = real + d;
        for (int n = 0; n < half; ++n) {
          real[n] = source[n];
          real[n + half] = source[n + half];
          imaginary[n] = source[n + half];  // -rotate_half(x) = [x[d/2:], -x[:d/2]]
          imaginary[n + half] = -source[n];
        }
      }
    }

    Vector out_plus(plus.out_size()), lse_plus(plus.lse_size());
    Vector out_plain(plain.out_size()), lse_plain(plain.lse_size());
    attention_forward_reference(plus.args, q.data(), k.data(), v.data(), out_plus.data(), lse_plus.data());
    attention_forward_reference(plain.args, q_doubled.data(), k.data(), v.data(), out_plain.data(), lse_plain.data());
    for (size_t e = 0; e < out_plus.size(); ++e) ASSERT_NEAR(out_plus[e], out_plain[e], 1e-12) << e;
    for (size_t e = 0; e < lse_plus.size(); ++e) ASSERT_NEAR(lse_plus[e], lse_plain[e], 1e-12) << e;
  }
}

TEST(AttentionReference, HeadsReadTheirKeyValueHead) {
  // Changing the values of one key/value head changes exactly the outputs of
  // the attention heads j with j / (A / G) equal to that head.
  const HeadLayout layout = HeadLayout::from_config(Variant::kEC, 8, 4, 8);
  Problem problem(layout, RopeScalingType::kNone, 4, 4, 0, false, false);
  Rng rng(6);
  const Vector q = random_vector(rng, problem.q_size());
  const Vector k = random_vector(rng, problem.kv_size());
  Vector v = random_vector(rng, problem.kv_size());
  Vector before(problem.out_size()), after(problem.out_size()), lse(problem.lse_size());
  attention_forward_reference(problem.args, q.data(), k.data(), v.data(), before.data(), lse.data());
  const int changed_kv_head = 2;
  for (int64_t j = 0; j < 4; ++j) v[static_cast<size_t>((j * 4 + changed_kv_head) * 8)] += 1.0;
  attention_forward_reference(problem.args, q.data(), k.data(), v.data(), after.data(), lse.data());

  for (int head = 0; head < layout.n_attention_heads(); ++head) {
    const bool reads_changed = head / (layout.n_attention_heads() / layout.n_kv_heads) == changed_kv_head;
    const double difference = std::abs(after[static_cast<size_t>(head * 8)] - before[static_cast<size_t>(head * 8)]);
    if (reads_changed) {
      EXPECT_GT(difference, 1e-3) << "head " << head;
    } else {
      EXPECT_EQ(difference, 0.0) << "head " << head;
    }
  }
}

TEST(AttentionReference, ProbabilitiesFollowMasks) {
  const HeadLayout layout = HeadLayout::from_config(Variant::kEH, 4, 2, 8);
  Problem problem(layout, RopeScalingType::kNone, 5, 12, 7, true, true);
  Rng rng(7);
  const Vector q = random_vector(rng, problem.q_size());
  const Vector k = random_vector(rng, problem.kv_size());
  const Vector v = random_vector(rng, problem.kv_size());
  Vector out(problem.out_size()), lse(problem.lse_size());
  Vector probs(static_cast<size_t>(layout.n_attention_heads() * 5 * 12));
  attention_forward_reference(problem.args, q.data(), k.data(), v.data(), out.data(), lse.data(), probs.data());

  for (int head = 0; head < layout.n_attention_heads(); ++head) {
    for (int64_t i = 0; i < 5; ++i) {
      double sum = 0.0;
      for (int64_t j = 0; j < 12; ++j) {
        const double p = probs[static_cast<size_t>((head * 5 + i) * 12 + j)];
        // Causal aligned to the end of the keys: query i is key 7 + i.
        const bool visible = j <= 7 + i && problem.key_segments[static_cast<size_t>(j)] ==
                                               problem.query_segments[static_cast<size_t>(i)];
        if (visible) {
          EXPECT_GT(p, 0.0);
        } else {
          EXPECT_EQ(p, 0.0) << "head " << head << " query " << i << " key " << j;
        }
        sum += p;
      }
      EXPECT_NEAR(sum, 1.0, 1e-12);
    }
  }
}

TEST(AttentionReference, ChunkedQueriesMatchOnePass) {
  // Queries 0..9 in one call equal queries 0..3 and 4..9 in two calls at
  // offsets 0 and 4 (chunked prefill), noise included: noise is drawn per key
  // index, not per position in the call.
  const HeadLayout layout = HeadLayout::from_config(Variant::kEC, 2, 1, 8);
  Problem whole(layout, RopeScalingType::kNone, 10, 10, 0, true, false);
  whole.args.noise = {NoiseSide::kImaginary, 0.8, 12};
  Rng rng(8);
  const Vector q = random_vector(rng, whole.q_size());
  const Vector k = random_vector(rng, whole.kv_size());
  const Vector v = random_vector(rng, whole.kv_size());
  Vector out(whole.out_size()), lse(whole.lse_size());
  attention_forward_reference(whole.args, q.data(), k.data(), v.data(), out.data(), lse.data());

  const int64_t row = layout.n_attention_heads() * layout.head_dim;
  const int64_t q_row = layout.n_query_heads * layout.head_dim;
  for (int64_t start : {int64_t{0}, int64_t{4}}) {
    const int64_t count = start == 0 ? 4 : 6;
    AttentionArgs chunk = whole.args;
    chunk.n_queries = count;
    chunk.query_offset = start;
    chunk.query_positions = whole.query_positions.data() + start;
    Vector chunk_out(static_cast<size_t>(count * row)), chunk_lse(static_cast<size_t>(count * 2 * 2));
    attention_forward_reference(chunk, q.data() + start * q_row, k.data(), v.data(), chunk_out.data(),
                                chunk_lse.data());
    for (int64_t e = 0; e < count * row; ++e) {
      ASSERT_EQ(chunk_out[static_cast<size_t>(e)], out[static_cast<size_t>(start * row + e)]) << "start " << start;
    }
  }
}

TEST(AttentionReference, NoiseChangesOnlyItsSide) {
  const HeadLayout layout = HeadLayout::from_config(Variant::kEC, 2, 1, 8);
  Problem problem(layout, RopeScalingType::kNone, 6, 6, 0, true, false);
  Rng rng(9);
  const Vector q = random_vector(rng, problem.q_size());
  const Vector k = random_vector(rng, problem.kv_size());
  const Vector v = random_vector(rng, problem.kv_size());
  Vector clean(problem.out_size()), noisy(problem.out_size()), lse(problem.lse_size());
  attention_forward_reference(problem.args, q.data(), k.data(), v.data(), clean.data(), lse.data());

  for (NoiseSide side : {NoiseSide::kReal, NoiseSide::kImaginary}) {
    problem.args.noise = {side, 1.0, 3};
    attention_forward_reference(problem.args, q.data(), k.data(), v.data(), noisy.data(), lse.data());
    for (int64_t i = 1; i < 6; ++i) {  // query 0 attends to one key only, so its output ignores the query
      for (int head = 0; head < layout.n_attention_heads(); ++head) {
        const bool on_side = layout.is_imaginary_head(head) == (side == NoiseSide::kImaginary);
        const size_t offset = static_cast<size_t>((i * layout.n_attention_heads() + head) * 8);
        if (on_side) {
          EXPECT_NE(noisy[offset], clean[offset]) << "query " << i << " head " << head;
        } else {
          EXPECT_EQ(noisy[offset], clean[offset]) << "query " << i << " head " << head;
        }
      }
    }
  }
}

TEST(AttentionReference, QueryWithoutVisibleKeyIsZero) {
  const HeadLayout layout = HeadLayout::from_config(Variant::kVanilla, 2, 1, 8);
  Problem problem(layout, RopeScalingType::kNone, 3, 3, 0, false, true);
  problem.query_segments[1] = 99;  // no key is in segment 99
  Rng rng(10);
  const Vector q = random_vector(rng, problem.q_size());
  const Vector k = random_vector(rng, problem.kv_size());
  const Vector v = random_vector(rng, problem.kv_size());
  Vector out(problem.out_size(), 1.0), lse(problem.lse_size());
  attention_forward_reference(problem.args, q.data(), k.data(), v.data(), out.data(), lse.data());
  for (int head = 0; head < 2; ++head) {
    EXPECT_EQ(lse[static_cast<size_t>(2 + head)], -std::numeric_limits<double>::infinity());
    for (int e = 0; e < 8; ++e) EXPECT_EQ(out[static_cast<size_t>((2 + head) * 8 + e)], 0.0);
  }
}

TEST(AttentionReference, InvalidArgumentsRaise) {
  const HeadLayout layout = HeadLayout::from_config(Variant::kVanilla, 2, 1, 8);
  Problem problem(layout, RopeScalingType::kNone, 3, 3, 0, true, false);
  Vector buffer(64, 0.1);

  AttentionArgs empty = problem.args;
  empty.n_queries = 0;
  EXPECT_THROW(attention_forward_reference(empty, buffer.data(), buffer.data(), buffer.data(), buffer.data(),
                                           buffer.data()),
               Error);
  AttentionArgs one_sided_segments = problem.args;
  one_sided_segments.query_segments = problem.query_segments.data();
  EXPECT_THROW(attention_forward_reference(one_sided_segments, buffer.data(), buffer.data(), buffer.data(),
                                           buffer.data(), buffer.data()),
               Error);
  AttentionArgs bad_noise = problem.args;
  bad_noise.noise = {NoiseSide::kImaginary, 1.0, 0};  // vanilla has no imaginary heads
  EXPECT_THROW(attention_forward_reference(bad_noise, buffer.data(), buffer.data(), buffer.data(), buffer.data(),
                                           buffer.data()),
               Error);
  AttentionArgs negative_noise = problem.args;
  negative_noise.noise = {NoiseSide::kReal, -1.0, 0};
  EXPECT_THROW(attention_forward_reference(negative_noise, buffer.data(), buffer.data(), buffer.data(),
                                           buffer.data(), buffer.data()),
               Error);
  EXPECT_THROW(parse_variant("rope+"), Error);
}

}  // namespace
}  // namespace ropepp
