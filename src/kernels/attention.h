// RoPE and RoPE++ attention on the CPU: one API for vanilla RoPE, RoPE++EH and
// RoPE++EC.
//
// RoPE++ keeps the imaginary part of RoPE's complex attention score as a second
// attention head with its own softmax. With q_re the rotated query and k_rot
// the rotated key, the imaginary head scores
//
//   q_im . k_rot   with   q_im = -rotate_half(q_re),
//
// i.e. the query turned by -pi/2 in every frequency pair before rotation. Keys
// and values are shared by the two heads; real and imaginary scores are never
// mixed before the softmax.
//
// Head order: attention head 2i is the real head of query head i and 2i+1 its
// imaginary head, and o_proj reads the head outputs in that order. Attention
// head j reads key/value head j / (n_attention_heads / n_kv_heads), so both
// heads of one query head share its key/value head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/rope.h"

namespace ropepp {

enum class Variant {
  kVanilla,  // standard RoPE
  kEH,       // RoPE++ equal heads: half the query and key/value projections, same attention heads
  kEC,       // RoPE++ equal cache: same projections and cache, twice the attention heads
};

// Parses "rope", "eh" or "ec" (also "vanilla", "rope++eh", "rope++ec").
Variant parse_variant(const std::string& name);
std::string variant_name(Variant variant);  // "rope", "rope++eh", "rope++ec"

// The head structure of one attention layer as the kernels see it.
struct HeadLayout {
  int n_query_heads = 0;  // heads produced by q_proj
  int n_kv_heads = 0;     // heads produced by k_proj and v_proj
  int head_dim = 0;
  bool imaginary = false;  // RoPE++: every query head yields a real and an imaginary head

  // Builds the layout from a Llama config's num_attention_heads (H) and
  // num_key_value_heads (G): vanilla (H, G), EH (H/2, G/2, imaginary),
  // EC (H, G, imaginary). Throws ropepp::Error when the counts do not fit.
  static HeadLayout from_config(Variant variant, int num_attention_heads, int num_key_value_heads, int head_dim);

  int n_attention_heads() const { return imaginary ? 2 * n_query_heads : n_query_heads; }
  int group_size() const { return n_attention_heads() / n_kv_heads; }  // attention heads per key/value head
  int kv_head_of(int attention_head) const { return attention_head / group_size(); }
  int query_head_of(int attention_head) const { return imaginary ? attention_head / 2 : attention_head; }
  bool is_imaginary_head(int attention_head) const { return imaginary && attention_head % 2 == 1; }

  // Throws ropepp::Error naming the bad count (even positive head_dim,
  // n_kv_heads dividing n_query_heads).
  void validate() const;
};

// The paper's noise ablation: Gaussian noise added to the rotated queries of
// one side only. The noise for attention head j, token index i (in the key
// sequence) and component e is stddev * N(0,1) drawn from (seed, j, i*d+e), so
// it does not depend on how the work is split or chunked.
enum class NoiseSide { kNone, kReal, kImaginary };

struct QueryNoise {
  NoiseSide side = NoiseSide::kNone;
  double stddev = 0.0;
  uint64_t seed = 0;
  bool active() const { return side != NoiseSide::kNone && stddev != 0.0; }
};

// Which keys each query sees and where the tokens sit.
//
// Queries are n_queries consecutive tokens of a key sequence of n_keys tokens,
// starting at key index query_offset: query i is the token at key index
// query_offset + i. With causal masking query i sees key j iff
// j <= query_offset + i, so a block of new queries at the end of a KV cache uses
// query_offset = n_keys - n_queries. Segment ids (document ids of packed
// sequences) further restrict attention to keys of the same segment.
// Positions only drive the rotation and are arbitrary integers >= 0 (they
// restart at 0 in each packed document).
struct AttentionArgs {
  HeadLayout layout;
  const RopeTable* rope = nullptr;
  bool causal = true;
  float scale = 0.0f;  // 0 selects 1/sqrt(head_dim)

  int64_t n_queries = 0;
  int64_t n_keys = 0;
  int64_t query_offset = 0;

  const int32_t* query_positions = nullptr;  // [n_queries]
  const int32_t* key_positions = nullptr;    // [n_keys]; may be null for attention_forward_cached
  const int32_t* query_segments = nullptr;   // [n_queries] or null: one segment
  const int32_t* key_segments = nullptr;     // [n_keys] or null

  QueryNoise noise;

  float effective_scale() const;

  // True when query i may attend to key j (mask only, no positions).
  bool visible(int64_t i, int64_t j) const {
    if (causal && j > query_offset + i) return false;
    if (query_segments != nullptr && key_segments != nullptr && query_segments[i] != key_segments[j]) return false;
    return true;
  }

  // Throws ropepp::Error on inconsistent sizes, missing pointers or a bad layout.
  void validate() const;
};

// Plain self-attention over one sequence of n tokens.
AttentionArgs self_attention_args(const HeadLayout& layout, const RopeTable& rope, int64_t n_tokens,
                                  const int32_t* positions, const int32_t* segments = nullptr, bool causal = true);

// ---- Tensor layouts ---------------------------------------------------------
//   q      [n_queries][n_query_heads][head_dim]   before rotation
//   k, v   [n_keys][n_kv_heads][head_dim]         k before rotation
//   out    [n_queries][n_attention_heads][head_dim]
//   lse    [n_queries][n_attention_heads]         natural log of the softmax
//          denominator of the scaled scores; -inf for a query that sees no key
//          (its output row is then zero)

// Storage of a key/value cache: keys are stored already rotated.
enum class CacheType { kF32, kBF16 };

struct KVCacheView {
  CacheType type = CacheType::kF32;
  const void* keys = nullptr;    // rotated keys
  const void* values = nullptr;
  int64_t token_stride = 0;  // elements between consecutive tokens of one head
  int64_t head_stride = 0;   // elements between consecutive key/value heads
};

// ---- Reference (double precision, plain loops) ------------------------------

// probs, when not null, receives [n_attention_heads][n_queries][n_keys].
void attention_forward_reference(const AttentionArgs& args, const double* q, const double* k, const double* v,
                                 double* out, double* lse, double* probs = nullptr);

// Gradients with respect to q, k and v before rotation. Noise, if active, is a
// constant offset and has no gradient of its own.
void attention_backward_reference(const AttentionArgs& args, const double* q, const double* k, const double* v,
                                  const double* d_out, double* d_q, double* d_k, double* d_v);

// ---- Fused kernels (f32, tiled, online softmax, threaded, SIMD) -------------

// Prefill forward. lse may be null when no backward follows.
void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v, float* out,
                       float* lse);

// Prefill backward from the forward's out and lse; writes (not accumulates)
// d_q [n_queries][n_query_heads][d], d_k and d_v [n_keys][n_kv_heads][d].
void attention_backward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* d_out, float* d_q, float* d_k, float* d_v);

// Queries (before rotation) against keys and values in a cache, which already
// contains the queries' own keys. Used for chunked prefill and decode; picks the
// split-K decode kernel when n_queries is small.
void attention_forward_cached(const AttentionArgs& args, const float* q, const KVCacheView& cache, float* out,
                              float* lse);

// Attention probabilities of the chosen attention heads, for attention maps on
// small inputs: probs receives [heads.size()][n_queries][n_keys] in f32.
void attention_probabilities(const AttentionArgs& args, const float* q, const float* k,
                             const std::vector<int>& heads, float* probs);

}  // namespace ropepp
