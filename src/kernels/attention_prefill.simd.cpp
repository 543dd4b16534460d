// Tiled prefill attention, forward and backward, for one instruction set
// (this file is compiled once per SIMD target, see kernels/simd.h).
//
// Work is split over (key/value head, query block) in the forward and over
// (key/value head, key block) in the backward. A query tile stacks the rows of
// every attention head that reads the key/value head, real and imaginary:
// row r is query i0 + r / group of attention head g * group + r % group. The
// imaginary rows hold -rotate_half(q_rot), built while the tile is filled,
// so one plain GEMM against the key tile scores both kinds of head and each
// key/value tile is read once for the whole group. Scores never exist beyond
// one (query tile x key tile) block: the forward keeps a running max and sum
// per row (online softmax), the backward recomputes probabilities from lse.
//
// GEMMs go to cblas_sgemm. The calls run inside an OpenMP parallel region,
// where the OpenMP build of OpenBLAS runs one-threaded, so threads do not
// oversubscribe the cores.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/attention_prefill.h"
#include "kernels/attention_prefill_vec.h"

// GCC 12 warns that the placeholder operand inside its own AVX-512 intrinsics
// (_mm512_undefined_*) may be used uninitialized. The warning points into the
// compiler's headers, not at this code, so it is off in this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace ropepp {
namespace ROPEPP_SIMD_NS {
namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

// Sizes shared by the forward and the backward.
struct Geometry {
  explicit Geometry(const AttentionArgs& attention_args)
      : args(attention_args),
        layout(attention_args.layout),
        d(layout.head_dim),
        half(layout.head_dim / 2),
        n_query_heads(layout.n_query_heads),
        n_kv_heads(layout.n_kv_heads),
        n_heads(layout.n_attention_heads()),
        group(layout.group_size()),
        scale(attention_args.effective_scale()),
        n_query_blocks((attention_args.n_queries + kPrefillQueryBlock - 1) / kPrefillQueryBlock),
        n_key_blocks((attention_args.n_keys + kPrefillKeyBlock - 1) / kPrefillKeyBlock) {}

  const AttentionArgs& args;
  const HeadLayout& layout;
  int d, half, n_query_heads, n_kv_heads, n_heads, group;
  float scale;
  int64_t n_query_blocks, n_key_blocks;

  int64_t query_rows(int64_t i0) const { return std::min(kPrefillQueryBlock, args.n_queries - i0); }
  int64_t key_columns(int64_t j0) const { return std::min(kPrefillKeyBlock, args.n_keys - j0); }
  int64_t kv_stride() const { return static_cast<int64_t>(n_kv_heads) * d; }  // between tokens of k_rot and v
};

// Smallest and largest segment id inside each block of a segment array.
struct SegmentRange {
  int32_t low = 0;
  int32_t high = 0;
};

std::vector<SegmentRange> block_segment_ranges(const int32_t* segments, int64_t n, int64_t block) {
  std::vector<SegmentRange> ranges;
  if (segments == nullptr) return ranges;
  for (int64_t start = 0; start < n; start += block) {
    const int64_t end = std::min(n, start + block);
    const auto [low, high] = std::minmax_element(segments + start, segments + end);
    ranges.push_back({*low, *high});
  }
  return ranges;
}

// False when no query of one block can share a segment with a key of the other.
bool segments_may_meet(const std::vector<SegmentRange>& query_ranges, const std::vector<SegmentRange>& key_ranges,
                       int64_t query_block, int64_t key_block) {
  if (query_ranges.empty()) return true;
  const SegmentRange& q = query_ranges[static_cast<size_t>(query_block)];
  const SegmentRange& k = key_ranges[static_cast<size_t>(key_block)];
  return q.low <= k.high && k.low <= q.high;
}

// The ablation noise of attention head `head` at query i, component e, as the
// reference defines it, rounded to f32.
float query_noise(const AttentionArgs& args, int head, int64_t i, int e) {
  const uint64_t token = static_cast<uint64_t>(args.query_offset + i);
  const uint64_t index = token * static_cast<uint64_t>(args.layout.head_dim) + static_cast<uint64_t>(e);
  return static_cast<float>(args.noise.stddev * gaussian_at(args.noise.seed, static_cast<uint64_t>(head), index));
}

bool head_has_noise(const AttentionArgs& args, int head) {
  const NoiseSide side = args.layout.is_imaginary_head(head) ? NoiseSide::kImaginary : NoiseSide::kReal;
  return args.noise.active() && args.noise.side == side;
}

// Draws the noise of every (query, attention head) row once, [n_queries][A][d],
// zero on heads of the other side. The backward builds each query tile once per
// key block, and drawing the noise there again would cost more than its GEMMs.
std::vector<float> draw_query_noise(const Geometry& geo) {
  const AttentionArgs& args = geo.args;
  std::vector<float> noise(static_cast<size_t>(args.n_queries * geo.n_heads * geo.d), 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < args.n_queries; ++i) {
    for (int head = 0; head < geo.n_heads; ++head) {
      if (!head_has_noise(args, head)) continue;
      float* row = noise.data() + (i * geo.n_heads + head) * geo.d;
      for (int e = 0; e < geo.d; ++e) row[e] = query_noise(args, head, i, e);
    }
  }
  return noise;
}

// Fills the query tile of key/value head g for queries [i0, i0 + rows): the
// rotated query, turned to -rotate_half of itself on imaginary heads, plus the
// ablation noise of its side, times the score scale. drawn_noise is the output
// of draw_query_noise, or null to draw the noise here.
void build_query_tile(const Geometry& geo, const float* q_rot, const float* drawn_noise, int g, int64_t i0,
                      int64_t rows, float* tile) {
  const AttentionArgs& args = geo.args;
  const int d = geo.d;
  const int half = geo.half;
  for (int64_t il = 0; il < rows; ++il) {
    const int64_t i = i0 + il;
    for (int a = 0; a < geo.group; ++a) {
      const int head = g * geo.group + a;
      const float* source = q_rot + (i * geo.n_query_heads + geo.layout.query_head_of(head)) * d;
      float* row = tile + (il * geo.group + a) * d;
      if (geo.layout.is_imaginary_head(head)) {
        for (int n = 0; n < half; ++n) {
          row[n] = source[n + half];
          row[n + half] = -source[n];
        }
      } else {
        std::copy(source, source + d, row);
      }

      if (head_has_noise(args, head)) {
        if (drawn_noise != nullptr) {
          const float* noise = drawn_noise + (i * geo.n_heads + head) * d;
          for (int e = 0; e < d; ++e) row[e] += noise[e];
        } else {
          for (int e = 0; e < d; ++e) row[e] += query_noise(args, head, i, e);
        }
      }
      vec::scale_row(row, d, geo.scale);
    }
  }
}

// Sets the scores of invisible (query, key) pairs to -inf in a tile whose rows
// are queries [i0, i0 + rows) (each repeated for the group's heads) and whose
// columns are keys [j0, j0 + columns). mask_row is scratch of >= columns floats.
void mask_tile(const Geometry& geo, int64_t i0, int64_t rows, int64_t j0, int64_t columns, float* scores,
               int64_t ld_scores, float* mask_row) {
  const AttentionArgs& args = geo.args;
  const bool has_segments = args.query_segments != nullptr;
  if (!has_segments && !(args.causal && j0 + columns - 1 > args.query_offset + i0)) return;

  for (int64_t il = 0; il < rows; ++il) {
    const int64_t i = i0 + il;
    bool any_masked = false;
    for (int64_t c = 0; c < columns; ++c) {
      const bool visible = args.visible(i, j0 + c);
      mask_row[c] = visible ? 0.0f : kNegativeInfinity;
      any_masked = any_masked || !visible;
    }
    if (!any_masked) continue;
    for (int a = 0; a < geo.group; ++a) {
      float* row = scores + (il * geo.group + a) * ld_scores;
      for (int64_t c = 0; c < columns; ++c) row[c] += mask_row[c];
    }
  }
}

}  // namespace

void prefill_forward(const PrefillForward& problem) {
  const Geometry geo(*problem.args);
  const AttentionArgs& args = geo.args;
  const int d = geo.d;
  const int64_t tile_rows_max = kPrefillQueryBlock * geo.group;
  const std::vector<SegmentRange> query_ranges =
      block_segment_ranges(args.query_segments, args.n_queries, kPrefillQueryBlock);
  const std::vector<SegmentRange> key_ranges = block_segment_ranges(args.key_segments, args.n_keys, kPrefillKeyBlock);
  const int64_t n_items = geo.n_query_blocks * geo.n_kv_heads;

#pragma omp parallel
  {
    std::vector<float> query_tile(static_cast<size_t>(tile_rows_max * d));
    std::vector<float> scores(static_cast<size_t>(tile_rows_max * kPrefillKeyBlock));
    std::vector<float> accumulator(static_cast<size_t>(tile_rows_max * d));
    std::vector<float> running_max(static_cast<size_t>(tile_rows_max));
    std::vector<float> running_sum(static_cast<size_t>(tile_rows_max));
    std::vector<float> mask_row(static_cast<size_t>(kPrefillKeyBlock));

    // Items run from the last query block down: under a causal mask the last
    // blocks see the most keys, and starting with them balances the threads.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t query_block = geo.n_query_blocks - 1 - item / geo.n_kv_heads;
      const int g = static_cast<int>(item % geo.n_kv_heads);
      const int64_t i0 = query_block * kPrefillQueryBlock;
      const int64_t rows = geo.query_rows(i0);
      const int64_t tile_rows = rows * geo.group;

      build_query_tile(geo, problem.q_rot, nullptr, g, i0, rows, query_tile.data());
      std::fill(accumulator.begin(), accumulator.begin() + tile_rows * d, 0.0f);
      std::fill(running_max.begin(), running_max.begin() + tile_rows, kNegativeInfinity);
      std::fill(running_sum.begin(), running_sum.begin() + tile_rows, 0.0f);

      const int64_t key_end = args.causal ? std::min(args.n_keys, args.query_offset + i0 + rows) : args.n_keys;
      for (int64_t j0 = 0; j0 < key_end; j0 += kPrefillKeyBlock) {
        if (!segments_may_meet(query_ranges, key_ranges, query_block, j0 / kPrefillKeyBlock)) continue;
        const int64_t columns = std::min(kPrefillKeyBlock, key_end - j0);
        const float* key_tile = problem.k_rot + (j0 * geo.n_kv_heads + g) * d;
        const float* value_tile = problem.v + (j0 * geo.n_kv_heads + g) * d;

        // S = Q K^T: [tile_rows x columns]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(tile_rows), static_cast<int>(columns),
                    d, 1.0f, query_tile.data(), d, key_tile, static_cast<int>(geo.kv_stride()), 0.0f, scores.data(),
                    static_cast<int>(kPrefillKeyBlock));
        mask_tile(geo, i0, rows, j0, columns, scores.data(), kPrefillKeyBlock, mask_row.data());

        // Online softmax: rescale what was accumulated so far to the new row
        // maximum, and turn the scores into unnormalised probabilities.
        for (int64_t r = 0; r < tile_rows; ++r) {
          float* row = scores.data() + r * kPrefillKeyBlock;
          const float new_max = std::max(running_max[r], vec::row_max(row, columns));
          if (new_max == kNegativeInfinity) {
            // Nothing visible yet: exp(-inf - -inf) would be NaN.
            std::fill(row, row + columns, 0.0f);
            continue;
          }
          const float correction = vec::exp_scalar(running_max[r] - new_max);
          running_sum[r] = running_sum[r] * correction + vec::exp_shifted_sum(row, columns, new_max);
          if (correction != 1.0f) vec::scale_row(accumulator.data() + r * d, d, correction);
          running_max[r] = new_max;
        }

        // O += P V: [tile_rows x d]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(tile_rows), d,
                    static_cast<int>(columns), 1.0f, scores.data(), static_cast<int>(kPrefillKeyBlock), value_tile,
                    static_cast<int>(geo.kv_stride()), 1.0f, accumulator.data(), d);
      }

      for (int64_t r = 0; r < tile_rows; ++r) {
        const int64_t i = i0 + r / geo.group;
        const int head = g * geo.group + static_cast<int>(r % geo.group);
        float* out_row = problem.out + (i * geo.n_heads + head) * d;
        const float* accumulated = accumulator.data() + r * d;
        if (running_sum[r] == 0.0f) {
          // No visible key: the output is zero and lse is -inf by contract.
          std::fill(out_row, out_row + d, 0.0f);
          problem.lse[i * geo.n_heads + head] = kNegativeInfinity;
          continue;
        }
        const float inverse_sum = 1.0f / running_sum[r];
        for (int e = 0; e < d; ++e) out_row[e] = accumulated[e] * inverse_sum;
        problem.lse[i * geo.n_heads + head] = running_max[r] + std::log(running_sum[r]);
      }
    }
  }
}

void prefill_backward(const PrefillBackward& problem) {
  const Geometry geo(*problem.args);
  const AttentionArgs& args = geo.args;
  const int d = geo.d;
  const int half = geo.half;
  const int64_t tile_rows_max = kPrefillQueryBlock * geo.group;
  const std::vector<SegmentRange> query_ranges =
      block_segment_ranges(args.query_segments, args.n_queries, kPrefillQueryBlock);
  const std::vector<SegmentRange> key_ranges = block_segment_ranges(args.key_segments, args.n_keys, kPrefillKeyBlock);

  // D[i, head] = dO . O, the row term of the softmax backward.
  const int64_t n_rows = args.n_queries * geo.n_heads;
  std::vector<float> row_dots(static_cast<size_t>(n_rows));
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n_rows; ++row) {
    row_dots[row] = vec::dot(problem.d_out + row * d, problem.out + row * d, d);
  }

  std::vector<float> drawn_noise;
  if (args.noise.active()) drawn_noise = draw_query_noise(geo);
  const float* drawn_noise_data = drawn_noise.empty() ? nullptr : drawn_noise.data();

  // Every thread accumulates dq into its own buffer, summed at the end, because
  // key blocks of one query block run on different threads.
  // NOTE: each buffer has n_queries * n_query_heads * head_dim floats, which is
  // 128 MiB per thread at 32768 tokens, 8 query heads and head_dim 128.
  const int64_t d_q_size = args.n_queries * geo.n_query_heads * d;
  std::vector<std::vector<float>> d_q_partials(static_cast<size_t>(omp_get_max_threads()));
  const int64_t n_items = geo.n_key_blocks * geo.n_kv_heads;

#pragma omp parallel
  {
    std::vector<float>& d_q_mine = d_q_partials[static_cast<size_t>(omp_get_thread_num())];
    d_q_mine.assign(static_cast<size_t>(d_q_size), 0.0f);
    std::vector<float> query_tile(static_cast<size_t>(tile_rows_max * d));
    std::vector<float> d_out_tile(static_cast<size_t>(tile_rows_max * d));
    std::vector<float> d_query_tile(static_cast<size_t>(tile_rows_max * d));
    std::vector<float> probs(static_cast<size_t>(tile_rows_max * kPrefillKeyBlock));
    std::vector<float> d_scores(static_cast<size_t>(tile_rows_max * kPrefillKeyBlock));
    std::vector<float> d_key_tile(static_cast<size_t>(kPrefillKeyBlock * d));
    std::vector<float> d_value_tile(static_cast<size_t>(kPrefillKeyBlock * d));
    std::vector<float> mask_row(static_cast<size_t>(kPrefillKeyBlock));

    // Under a causal mask the first key blocks are seen by the most queries,
    // so the natural order already runs the heaviest items first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t key_block = item / geo.n_kv_heads;
      const int g = static_cast<int>(item % geo.n_kv_heads);
      const int64_t j0 = key_block * kPrefillKeyBlock;
      const int64_t columns = geo.key_columns(j0);
      const float* key_tile = problem.k_rot + (j0 * geo.n_kv_heads + g) * d;
      const float* value_tile = problem.v + (j0 * geo.n_kv_heads + g) * d;
      std::fill(d_key_tile.begin(), d_key_tile.end(), 0.0f);
      std::fill(d_value_tile.begin(), d_value_tile.end(), 0.0f);

      const int64_t first_query = args.causal ? std::max<int64_t>(0, j0 - args.query_offset) : 0;
      for (int64_t query_block = first_query / kPrefillQueryBlock; query_block < geo.n_query_blocks; ++query_block) {
        if (!segments_may_meet(query_ranges, key_ranges, query_block, key_block)) continue;
        const int64_t i0 = query_block * kPrefillQueryBlock;
        const int64_t rows = geo.query_rows(i0);
        const int64_t tile_rows = rows * geo.group;
        const int ld = static_cast<int>(kPrefillKeyBlock);

        build_query_tile(geo, problem.q_rot, drawn_noise_data, g, i0, rows, query_tile.data());
        for (int64_t il = 0; il < rows; ++il) {
          const float* source = problem.d_out + ((i0 + il) * geo.n_heads + g * geo.group) * d;
          std::copy(source, source + geo.group * d, d_out_tile.data() + il * geo.group * d);
        }

        // P = exp(Q K^T - lse), recomputed exactly as the forward scored it.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(tile_rows), static_cast<int>(columns),
                    d, 1.0f, query_tile.data(), d, key_tile, static_cast<int>(geo.kv_stride()), 0.0f, probs.data(),
                    ld);
        mask_tile(geo, i0, rows, j0, columns, probs.data(), ld, mask_row.data());
        for (int64_t r = 0; r < tile_rows; ++r) {
          float* row = probs.data() + r * ld;
          const int head = g * geo.group + static_cast<int>(r % geo.group);
          const float row_lse = problem.lse[(i0 + r / geo.group) * geo.n_heads + head];
          if (row_lse == kNegativeInfinity) {
            std::fill(row, row + columns, 0.0f);
          } else {
            vec::exp_shifted_sum(row, columns, row_lse);
          }
        }

        // dV += P^T dO: [columns x d]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(columns), d,
                    static_cast<int>(tile_rows), 1.0f, probs.data(), ld, d_out_tile.data(), d, 1.0f,
                    d_value_tile.data(), d);
        // dP = dO V^T: [tile_rows x columns]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(tile_rows), static_cast<int>(columns),
                    d, 1.0f, d_out_tile.data(), d, value_tile, static_cast<int>(geo.kv_stride()), 0.0f,
                    d_scores.data(), ld);
        // dS = P * (dP - D)
        for (int64_t r = 0; r < tile_rows; ++r) {
          const int head = g * geo.group + static_cast<int>(r % geo.group);
          const float row_dot = row_dots[static_cast<size_t>((i0 + r / geo.group) * geo.n_heads + head)];
          vec::softmax_backward_row(d_scores.data() + r * ld, probs.data() + r * ld, columns, row_dot);
        }
        // dK += dS^T (scale * Q): the query tile already carries the scale.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(columns), d,
                    static_cast<int>(tile_rows), 1.0f, d_scores.data(), ld, query_tile.data(), d, 1.0f,
                    d_key_tile.data(), d);
        // d(tile query) = dS K, then back to the real query: scale it, and on an
        // imaginary row, where the tile held -rotate_half(q_rot), apply
        // rotate_half (the transpose of -rotate_half).
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(tile_rows), d,
                    static_cast<int>(columns), 1.0f, d_scores.data(), ld, key_tile, static_cast<int>(geo.kv_stride()),
                    0.0f, d_query_tile.data(), d);
        for (int64_t r = 0; r < tile_rows; ++r) {
          const int head = g * geo.group + static_cast<int>(r % geo.group);
          const float* d_row = d_query_tile.data() + r * d;
          float* target = d_q_mine.data() + ((i0 + r / geo.group) * geo.n_query_heads + geo.layout.query_head_of(head)) * d;
          if (geo.layout.is_imaginary_head(head)) {
            for (int n = 0; n < half; ++n) {
              target[n] -= geo.scale * d_row[n + half];
              target[n + half] += geo.scale * d_row[n];
            }
          } else {
            vec::add_scaled(target, d_row, d, geo.scale);
          }
        }
      }

      for (int64_t c = 0; c < columns; ++c) {
        const int64_t offset = ((j0 + c) * geo.n_kv_heads + g) * d;
        std::copy(d_key_tile.data() + c * d, d_key_tile.data() + (c + 1) * d, problem.d_k_rot + offset);
        std::copy(d_value_tile.data() + c * d, d_value_tile.data() + (c + 1) * d, problem.d_v + offset);
      }
    }
  }

  // Sum the per-thread dq buffers. A team smaller than omp_get_max_threads()
  // (a nested call) leaves the buffers of the missing threads empty.
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < d_q_size; ++e) problem.d_q_rot[e] = 0.0f;
  for (const std::vector<float>& partial : d_q_partials) {
    if (partial.empty()) continue;
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < d_q_size; ++e) problem.d_q_rot[e] += partial[static_cast<size_t>(e)];
  }
}

}  // namespace ROPEPP_SIMD_NS
}  // namespace ropepp
