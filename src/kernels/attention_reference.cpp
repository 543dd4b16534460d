// The reference attention: plain loops in double precision, written to be
// obviously right. Every fast kernel is tested against it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention.h"

namespace ropepp {
namespace {

using Vector = std::vector<double>;

// x * cos + rotate_half(x) * sin, with cos and sin of the token's position.
Vector rotate(const RopeTable& rope, int64_t position, const double* x) {
  const int half = rope.half_dim();
  Vector cos_values(static_cast<size_t>(half)), sin_values(static_cast<size_t>(half));
  rope.cos_sin(position, cos_values.data(), sin_values.data());
  Vector result(static_cast<size_t>(2 * half));
  for (int n = 0; n < half; ++n) {
    result[n] = x[n] * cos_values[n] - x[n + half] * sin_values[n];
    result[n + half] = x[n + half] * cos_values[n] + x[n] * sin_values[n];
  }
  return result;
}

// The transpose of rotate(): x * cos - rotate_half(x) * sin.
Vector rotate_transpose(const RopeTable& rope, int64_t position, const double* x) {
  const int half = rope.half_dim();
  Vector cos_values(static_cast<size_t>(half)), sin_values(static_cast<size_t>(half));
  rope.cos_sin(position, cos_values.data(), sin_values.data());
  Vector result(static_cast<size_t>(2 * half));
  for (int n = 0; n < half; ++n) {
    result[n] = x[n] * cos_values[n] + x[n + half] * sin_values[n];
    result[n + half] = x[n + half] * cos_values[n] - x[n] * sin_values[n];
  }
  return result;
}

// rotate_half(x) = [-x[d/2:], x[:d/2]]
Vector rotate_half(const Vector& x) {
  const size_t half = x.size() / 2;
  Vector result(x.size());
  for (size_t n = 0; n < half; ++n) {
    result[n] = -x[n + half];
    result[n + half] = x[n];
  }
  return result;
}

double dot(const Vector& a, const double* b) {
  double sum = 0.0;
  for (size_t e = 0; e < a.size(); ++e) sum += a[e] * b[e];
  return sum;
}

// The query an attention head scores with: the rotated query for a real head,
// -rotate_half of it for an imaginary head, plus the ablation noise of its side.
Vector head_query(const AttentionArgs& args, const double* q, int64_t i, int head) {
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const double* q_row = q + (i * layout.n_query_heads + layout.query_head_of(head)) * d;
  Vector query = rotate(*args.rope, args.query_positions[i], q_row);
  const bool imaginary = layout.is_imaginary_head(head);
  if (imaginary) {
    query = rotate_half(query);
    for (double& value : query) value = -value;
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

std::vector<Vector> rotated_keys(const AttentionArgs& args, const double* k, int kv_head) {
  const HeadLayout& layout = args.layout;
  std::vector<Vector> keys(static_cast<size_t>(args.n_keys));
  for (int64_t j = 0; j < args.n_keys; ++j) {
    keys[j] = rotate(*args.rope, args.key_positions[j], k + (j * layout.n_kv_heads + kv_head) * layout.head_dim);
  }
  return keys;
}

// Softmax probabilities of query i over all keys (zero where masked).
// Returns the log-sum-exp, or -inf when no key is visible.
double softmax_row(const AttentionArgs& args, const Vector& query, const std::vector<Vector>& keys, int64_t i,
                   Vector& probs) {
  const double scale = args.effective_scale();
  double max_score = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < args.n_keys; ++j) {
    probs[j] = -std::numeric_limits<double>::infinity();
    if (!args.visible(i, j)) continue;
    probs[j] = scale * dot(query, keys[j].data());
    max_score = std::max(max_score, probs[j]);
  }
  if (max_score == -std::numeric_limits<double>::infinity()) {
    for (double& p : probs) p = 0.0;
    return max_score;
  }
  double sum = 0.0;
  for (double& p : probs) {
    p = std::exp(p - max_score);  // exp(-inf) = 0 for masked keys
    sum += p;
  }
  for (double& p : probs) p /= sum;
  return max_score + std::log(sum);
}

void check_reference_args(const AttentionArgs& args) {
  args.validate();
  ROPEPP_CHECK(args.key_positions != nullptr, "attention needs key positions");
}

}  // namespace

void attention_forward_reference(const AttentionArgs& args, const double* q, const double* k, const double* v,
                                 double* out, double* lse, double* probs) {
  check_reference_args(args);
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const int n_heads = layout.n_attention_heads();

  for (int head = 0; head < n_heads; ++head) {
    const int kv_head = layout.kv_head_of(head);
    const std::vector<Vector> keys = rotated_keys(args, k, kv_head);
    Vector row(static_cast<size_t>(args.n_keys));

    for (int64_t i = 0; i < args.n_queries; ++i) {
      const Vector query = head_query(args, q, i, head);
      const double row_lse = softmax_row(args, query, keys, i, row);
      if (lse != nullptr) lse[i * n_heads + head] = row_lse;
      if (probs != nullptr) {
        for (int64_t j = 0; j < args.n_keys; ++j) probs[(head * args.n_queries + i) * args.n_keys + j] = row[j];
      }

      double* out_row = out + (i * n_heads + head) * d;
      for (int e = 0; e < d; ++e) out_row[e] = 0.0;
      for (int64_t j = 0; j < args.n_keys; ++j) {
        if (row[j] == 0.0) continue;
        const double* v_row = v + (j * layout.n_kv_heads + kv_head) * d;
        for (int e = 0; e < d; ++e) out_row[e] += row[j] * v_row[e];
      }
    }
  }
}

void attention_backward_reference(const AttentionArgs& args, const double* q, const double* k, const double* v,
                                  const double* d_out, double* d_q, double* d_k, double* d_v) {
  check_reference_args(args);
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const int n_heads = layout.n_attention_heads();
  const double scale = args.effective_scale();

  std::fill(d_q, d_q + args.n_queries * layout.n_query_heads * d, 0.0);
  std::fill(d_k, d_k + args.n_keys * layout.n_kv_heads * d, 0.0);
  std::fill(d_v, d_v + args.n_keys * layout.n_kv_heads * d, 0.0);

  // Gradients with respect to rotated keys, turned back at the end.
  std::vector<double> d_k_rotated(static_cast<size_t>(args.n_keys * layout.n_kv_heads * d), 0.0);

  for (int head = 0; head < n_heads; ++head) {
    const int kv_head = layout.kv_head_of(head);
    const std::vector<Vector> keys = rotated_keys(args, k, kv_head);
    Vector probs(static_cast<size_t>(args.n_keys));
    Vector d_scores(static_cast<size_t>(args.n_keys));

    for (int64_t i = 0; i < args.n_queries; ++i) {
      const Vector query = head_query(args, q, i, head);
      softmax_row(args, query, keys, i, probs);
      const double* d_out_row = d_out + (i * n_heads + head) * d;

      // 1. dV[j] += P[i,j] * dO[i];  dP[i,j] = dO[i] . V[j]
      double row_dot = 0.0;
      for (int64_t j = 0; j < args.n_keys; ++j) {
        d_scores[j] = 0.0;
        if (probs[j] == 0.0) continue;
        const double* v_row = v + (j * layout.n_kv_heads + kv_head) * d;
        double* d_v_row = d_v + (j * layout.n_kv_heads + kv_head) * d;
        double d_prob = 0.0;
        for (int e = 0; e < d; ++e) {
          d_v_row[e] += probs[j] * d_out_row[e];
          d_prob += d_out_row[e] * v_row[e];
        }
        d_scores[j] = d_prob;
        row_dot += probs[j] * d_prob;
      }

      // 2. Softmax backward: dS[i,j] = P[i,j] * (dP[i,j] - sum_j P[i,j] dP[i,j]), times the scale.
      Vector d_query(static_cast<size_t>(d), 0.0);
      for (int64_t j = 0; j < args.n_keys; ++j) {
        if (probs[j] == 0.0) continue;
        const double d_score = scale * probs[j] * (d_scores[j] - row_dot);
        double* d_key = d_k_rotated.data() + (j * layout.n_kv_heads + kv_head) * d;
        for (int e = 0; e < d; ++e) {
          d_query[e] += d_score * keys[j][e];
          d_key[e] += d_score * query[e];
        }
      }

      // 3. Back through the imaginary turn: query = -rotate_half(q_re), so
      //    d q_re = rotate_half(d query) (rotate_half is antisymmetric).
      if (layout.is_imaginary_head(head)) d_query = rotate_half(d_query);

      // 4. Back through the rotation of the query.
      const Vector d_q_unrotated = rotate_transpose(*args.rope, args.query_positions[i], d_query.data());
      double* d_q_row = d_q + (i * layout.n_query_heads + layout.query_head_of(head)) * d;
      for (int e = 0; e < d; ++e) d_q_row[e] += d_q_unrotated[e];
    }
  }

  // 5. Back through the rotation of the keys.
  for (int64_t j = 0; j < args.n_keys; ++j) {
    for (int kv_head = 0; kv_head < layout.n_kv_heads; ++kv_head) {
      const size_t offset = static_cast<size_t>((j * layout.n_kv_heads + kv_head) * d);
      const Vector d_key = rotate_transpose(*args.rope, args.key_positions[j], d_k_rotated.data() + offset);
      for (int e = 0; e < d; ++e) d_k[offset + e] = d_key[e];
    }
  }
}

}  // namespace ropepp
