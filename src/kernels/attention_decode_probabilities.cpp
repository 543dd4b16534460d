// attention_probabilities: the softmax rows of chosen attention heads, for
// attention maps. Plain loops in double precision, rounded to f32 at the end;
// meant for small inputs, because the output alone is heads x n_queries x n_keys.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention.h"

namespace ropepp {
namespace {

// x * cos + rotate_half(x) * sin at the given position, in double.
void rotate_into(const RopeTable& rope, int64_t position, const float* x, double* result) {
  const int half = rope.half_dim();
  std::vector<double> cos_values(static_cast<size_t>(half)), sin_values(static_cast<size_t>(half));
  rope.cos_sin(position, cos_values.data(), sin_values.data());
  for (int n = 0; n < half; ++n) {
    const double a = x[n], b = x[n + half];
    result[n] = a * cos_values[n] - b * sin_values[n];
    result[n + half] = b * cos_values[n] + a * sin_values[n];
  }
}

// The query attention head `head` scores with for query i (see attention.h).
std::vector<double> head_query(const AttentionArgs& args, const float* q, int64_t i, int head) {
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const int half = d / 2;
  std::vector<double> query(static_cast<size_t>(d));
  rotate_into(*args.rope, args.query_positions[i], q + (i * layout.n_query_heads + layout.query_head_of(head)) * d,
              query.data());
  const bool imaginary = layout.is_imaginary_head(head);
  if (imaginary) {
    for (int n = 0; n < half; ++n) {  // -rotate_half(x) = [x[d/2:], -x[:d/2]]
      const double first = query[n];
      query[n] = query[n + half];
      query[n + half] = -first;
    }
  }
  const NoiseSide side = imaginary ? NoiseSide::kImaginary : NoiseSide::kReal;
  if (args.noise.active() && args.noise.side == side) {
    const uint64_t token = static_cast<uint64_t>(args.query_offset + i);
    for (int e = 0; e < d; ++e) {
      query[e] += args.noise.stddev * gaussian_at(args.noise.seed, static_cast<uint64_t>(head),
                                                  token * static_cast<uint64_t>(d) + static_cast<uint64_t>(e));
    }
  }
  return query;
}

}  // namespace

void attention_probabilities(const AttentionArgs& args, const float* q, const float* k,
                             const std::vector<int>& heads, float* probs) {
  args.validate();
  ROPEPP_CHECK(args.key_positions != nullptr, "attention probabilities need key positions");
  ROPEPP_CHECK(q != nullptr && k != nullptr && (probs != nullptr || heads.empty()),
               "attention probabilities need query, key and output buffers");
  const HeadLayout& layout = args.layout;
  const int n_heads = layout.n_attention_heads();
  for (const int head : heads) {
    ROPEPP_CHECK(head >= 0 && head < n_heads, "invalid attention head {}: this layout has heads 0..{}", head,
                 n_heads - 1);
  }

  const int d = layout.head_dim;
  const double scale = args.effective_scale();
  const int64_t n_keys = args.n_keys;
  std::vector<double> keys(static_cast<size_t>(n_keys * d));
  std::vector<double> row(static_cast<size_t>(n_keys));
  int rotated_kv_head = -1;

  for (size_t a = 0; a < heads.size(); ++a) {
    const int head = heads[a];
    const int kv_head = layout.kv_head_of(head);
    if (kv_head != rotated_kv_head) {
      for (int64_t j = 0; j < n_keys; ++j) {
        rotate_into(*args.rope, args.key_positions[j], k + (j * layout.n_kv_heads + kv_head) * d,
                    keys.data() + j * d);
      }
      rotated_kv_head = kv_head;
    }

    for (int64_t i = 0; i < args.n_queries; ++i) {
      const std::vector<double> query = head_query(args, q, i, head);
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_keys; ++j) {
        row[j] = -std::numeric_limits<double>::infinity();
        if (!args.visible(i, j)) continue;
        double dot = 0.0;
        for (int e = 0; e < d; ++e) dot += query[e] * keys[j * d + e];
        row[j] = scale * dot;
        max_score = std::max(max_score, row[j]);
      }

      float* out = probs + (static_cast<int64_t>(a) * args.n_queries + i) * n_keys;
      if (max_score == -std::numeric_limits<double>::infinity()) {
        std::fill(out, out + n_keys, 0.0f);  // a query that sees no key has no distribution
        continue;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n_keys; ++j) {
        row[j] = std::exp(row[j] - max_score);  // exp(-inf) = 0 for masked keys
        sum += row[j];
      }
      for (int64_t j = 0; j < n_keys; ++j) out[j] = static_cast<float>(row[j] / sum);
    }
  }
}

}  // namespace ropepp
