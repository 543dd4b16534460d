// attention_forward_cached: queries against a KV cache, split over key/value
// heads, query blocks and chunks of the cache length (split-K), then merged.
//
// Work split: one work item is (key/value head g, query block b, key chunk c).
// It streams the keys and values of chunk c of head g once and serves all
// attention heads that read g (the real and imaginary heads of each query head
// of the GQA group) for every query of block b. For decode (a few queries) all
// queries form one block, and the cache length is cut into chunks so that even
// a single token keeps every thread busy. For chunked prefill the queries are
// cut into blocks instead. Each item writes a partial softmax state (max, sum,
// unnormalised output), and a final pass merges the chunks of each row.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention_decode.h"

namespace ropepp {
namespace {

// Up to this many queries form a single block per key/value head (decode).
constexpr int64_t kDecodeMaxQueries = 8;
// Queries per block when there are more (chunked prefill).
constexpr int64_t kPrefillQueryBlock = 16;
// Shortest key chunk worth its partial state and merge.
constexpr int64_t kMinChunkKeys = 256;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

struct WorkSplit {
  int64_t query_block = 0;  // queries per block
  int64_t n_blocks = 0;
  int64_t chunk_keys = 0;   // keys per chunk
  int64_t n_chunks = 0;
  int rows_per_block = 0;   // query_block * group size
};

WorkSplit plan_work(const AttentionArgs& args, int threads) {
  const HeadLayout& layout = args.layout;
  WorkSplit split;
  split.query_block = args.n_queries <= kDecodeMaxQueries ? args.n_queries : kPrefillQueryBlock;
  split.n_blocks = (args.n_queries + split.query_block - 1) / split.query_block;
  split.rows_per_block = static_cast<int>(split.query_block) * layout.group_size();

  // Aim for about four items per thread so dynamic scheduling can balance
  // them; never cut chunks shorter than kMinChunkKeys.
  const int64_t base_items = layout.n_kv_heads * split.n_blocks;
  const int64_t target_chunks = std::max<int64_t>(1, (4 * threads + base_items - 1) / base_items);
  split.chunk_keys = std::max(kMinChunkKeys, (args.n_keys + target_chunks - 1) / target_chunks);
  split.n_chunks = (args.n_keys + split.chunk_keys - 1) / split.chunk_keys;
  return split;
}

void check_cache(const AttentionArgs& args, const float* q, const KVCacheView& cache, const float* out) {
  const HeadLayout& layout = args.layout;
  ROPEPP_CHECK(q != nullptr && out != nullptr, "cached attention needs query and output buffers");
  ROPEPP_CHECK(cache.keys != nullptr && cache.values != nullptr, "KV cache view has no key or value storage");
  ROPEPP_CHECK(cache.token_stride >= layout.head_dim,
               "invalid KV cache token stride {}: expected at least head_dim {}", cache.token_stride,
               layout.head_dim);
  ROPEPP_CHECK(layout.n_kv_heads == 1 || cache.head_stride >= layout.head_dim,
               "invalid KV cache head stride {}: expected at least head_dim {} with {} key/value heads",
               cache.head_stride, layout.head_dim, layout.n_kv_heads);
}

// Writes the query row each attention head scores with, grouped by key/value
// head: rows[g][i][h - g * group][d]. A row is the rotated query, turned by
// -pi/2 (-rotate_half) for an imaginary head, plus the ablation noise of its
// side, times scale * log2(e) so that the kernel works with exp2. Rotation runs
// in double and is rounded once.
void prepare_rows(const AttentionArgs& args, const float* q, float* rows) {
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const int half = d / 2;
  const int n_heads = layout.n_attention_heads();
  const int group = layout.group_size();
  const double factor = static_cast<double>(args.effective_scale()) * kLog2e;

#pragma omp parallel if (args.n_queries * n_heads * d > 65536)
  {
    std::vector<double> cos_values(static_cast<size_t>(half)), sin_values(static_cast<size_t>(half));
    std::vector<double> rotated(static_cast<size_t>(d));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < args.n_queries; ++i) {
      args.rope->cos_sin(args.query_positions[i], cos_values.data(), sin_values.data());
      for (int h = 0; h < n_heads; ++h) {
        const float* x = q + (i * layout.n_query_heads + layout.query_head_of(h)) * d;
        for (int n = 0; n < half; ++n) {
          const double a = x[n], b = x[n + half];
          rotated[n] = a * cos_values[n] - b * sin_values[n];
          rotated[n + half] = b * cos_values[n] + a * sin_values[n];
        }
        const bool imaginary = layout.is_imaginary_head(h);
        if (imaginary) {
          // -rotate_half(x) = [x[d/2:], -x[:d/2]]
          for (int n = 0; n < half; ++n) {
            const double first = rotated[n];
            rotated[n] = rotated[n + half];
            rotated[n + half] = -first;
          }
        }
        const NoiseSide side = imaginary ? NoiseSide::kImaginary : NoiseSide::kReal;
        if (args.noise.active() && args.noise.side == side) {
          const uint64_t token = static_cast<uint64_t>(args.query_offset + i);
          for (int e = 0; e < d; ++e) {
            rotated[e] += args.noise.stddev * gaussian_at(args.noise.seed, static_cast<uint64_t>(h),
                                                          token * static_cast<uint64_t>(d) + static_cast<uint64_t>(e));
          }
        }
        const int g = layout.kv_head_of(h);
        float* row = rows + ((g * args.n_queries + i) * group + (h - g * group)) * d;
        for (int e = 0; e < d; ++e) row[e] = static_cast<float>(rotated[e] * factor);
      }
    }
  }
}

// Combines the chunk partials of every (query, head) row into out and lse.
void merge_chunks(const AttentionArgs& args, const WorkSplit& split, const float* partials,
                  int64_t slab_size, float* out, float* lse) {
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const int n_heads = layout.n_attention_heads();
  const int group = layout.group_size();
  const int rows = split.rows_per_block;

#pragma omp parallel for schedule(static) if (args.n_queries * n_heads * split.n_chunks * d > 65536)
  for (int64_t row_index = 0; row_index < args.n_queries * n_heads; ++row_index) {
    const int64_t i = row_index / n_heads;
    const int h = static_cast<int>(row_index % n_heads);
    const int g = layout.kv_head_of(h);
    const int64_t b = i / split.query_block;
    const int r = static_cast<int>((i - b * split.query_block) * group + (h - g * group));
    const int64_t first_slab = (g * split.n_blocks + b) * split.n_chunks;

    auto acc_of = [&](int64_t c) { return partials + (first_slab + c) * slab_size + r * d; };
    auto max_of = [&](int64_t c) { return partials[(first_slab + c) * slab_size + rows * d + r]; };
    auto sum_of = [&](int64_t c) { return partials[(first_slab + c) * slab_size + rows * (d + 1) + r]; };

    float max_score = kNegInf;
    bool non_finite = false;  // a chunk saw a NaN or +inf score (see update_row)
    for (int64_t c = 0; c < split.n_chunks; ++c) {
      non_finite = non_finite || std::isnan(max_of(c));
      max_score = std::max(max_score, max_of(c));
    }

    float* out_row = out + row_index * d;
    if (non_finite) {
      std::fill(out_row, out_row + d, std::numeric_limits<float>::quiet_NaN());
      if (lse != nullptr) lse[row_index] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    std::fill(out_row, out_row + d, 0.0f);
    if (max_score == kNegInf) {
      if (lse != nullptr) lse[row_index] = kNegInf;
      continue;
    }
    double total = 0.0;
    for (int64_t c = 0; c < split.n_chunks; ++c) {
      if (max_of(c) == kNegInf) continue;
      const float weight = std::exp2(max_of(c) - max_score);
      total += static_cast<double>(weight) * sum_of(c);
      const float* acc = acc_of(c);
      for (int e = 0; e < d; ++e) out_row[e] += weight * acc[e];
    }
    const float inverse = static_cast<float>(1.0 / total);
    for (int e = 0; e < d; ++e) out_row[e] *= inverse;
    if (lse != nullptr) lse[row_index] = static_cast<float>((max_score + std::log2(total)) * kLn2);
  }
}

}  // namespace

void attention_forward_cached(const AttentionArgs& args, const float* q, const KVCacheView& cache, float* out,
                              float* lse) {
  args.validate();
  check_cache(args, q, cache, out);
  const HeadLayout& layout = args.layout;
  const int d = layout.head_dim;
  const int group = layout.group_size();
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const WorkSplit split = plan_work(args, threads);

  // Per-row causal limits and segments, in the same order as the prepared rows.
  const int64_t n_rows = layout.n_kv_heads * args.n_queries * group;
  std::vector<float> rows(static_cast<size_t>(n_rows * d));
  std::vector<int64_t> key_limits(static_cast<size_t>(n_rows));
  std::vector<int32_t> row_segments(args.query_segments != nullptr ? static_cast<size_t>(n_rows) : 0);
  prepare_rows(args, q, rows.data());
  for (int64_t row = 0; row < n_rows; ++row) {
    const int64_t i = (row / group) % args.n_queries;
    key_limits[row] = args.causal ? args.query_offset + i + 1 : args.n_keys;
    if (!row_segments.empty()) row_segments[row] = args.query_segments[i];
  }

  // One slab per work item: acc [rows][d], then max [rows], then sum [rows].
  const int64_t slab_size = static_cast<int64_t>(split.rows_per_block) * (d + 2);
  const int64_t n_items = layout.n_kv_heads * split.n_blocks * split.n_chunks;
  // Reused across calls so repeated decode steps do not fault in fresh pages.
  // (A thread_local must not be named inside the parallel region: each worker
  // would see its own empty instance, so the region uses partial_data.)
  thread_local std::vector<float> partials;
  partials.resize(static_cast<size_t>(n_items * slab_size));
  float* partial_data = partials.data();

  const size_t element_size = cache.type == CacheType::kF32 ? sizeof(float) : sizeof(bf16_t);
  const auto decode_chunk = ROPEPP_SIMD_SELECT(decode_chunk);

#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores(static_cast<size_t>(split.rows_per_block) * kDecodeKeyBlock);
    std::vector<float> block_buffer(static_cast<size_t>(kDecodeKeyBlock) * d);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t c = item % split.n_chunks;
      const int64_t b = (item / split.n_chunks) % split.n_blocks;
      const int g = static_cast<int>(item / (split.n_chunks * split.n_blocks));
      const int64_t first_query = b * split.query_block;
      const int64_t n_block_queries = std::min(split.query_block, args.n_queries - first_query);
      const int64_t first_row = (g * args.n_queries + first_query) * group;

      DecodeChunk chunk;
      chunk.rows = rows.data() + first_row * d;
      chunk.n_rows = static_cast<int>(n_block_queries * group);
      chunk.head_dim = d;
      chunk.key_limits = key_limits.data() + first_row;
      if (!row_segments.empty()) {
        chunk.row_segments = row_segments.data() + first_row;
        chunk.key_segments = args.key_segments;
      }
      chunk.type = cache.type;
      const size_t head_offset = static_cast<size_t>(g * cache.head_stride) * element_size;
      chunk.keys = static_cast<const char*>(cache.keys) + head_offset;
      chunk.values = static_cast<const char*>(cache.values) + head_offset;
      chunk.token_stride = cache.token_stride;

      // Keys past the last query's causal limit are masked for the whole block.
      const int64_t block_limit = key_limits[first_row + chunk.n_rows - 1];
      chunk.key_begin = c * split.chunk_keys;
      chunk.key_end = std::max(chunk.key_begin, std::min({args.n_keys, chunk.key_begin + split.chunk_keys, block_limit}));

      float* slab = partial_data + item * slab_size;
      chunk.acc = slab;
      chunk.row_max = slab + split.rows_per_block * d;
      chunk.row_sum = chunk.row_max + split.rows_per_block;
      chunk.scores = scores.data();
      chunk.block_buffer = block_buffer.data();
      decode_chunk(chunk);
    }
  }

  merge_chunks(args, split, partial_data, slab_size, out, lse);
}

}  // namespace ropepp
