// Head layouts, argument validation and shared helpers of the attention API.
#include <cmath>

#include "core/error.h"
#include "kernels/attention.h"

namespace ropepp {

Variant parse_variant(const std::string& name) {
  if (name == "rope" || name == "vanilla") return Variant::kVanilla;
  if (name == "eh" || name == "rope++eh") return Variant::kEH;
  if (name == "ec" || name == "rope++ec") return Variant::kEC;
  fail("invalid variant '{}': expected rope, eh or ec", name);
}

std::string variant_name(Variant variant) {
  switch (variant) {
    case Variant::kVanilla: return "rope";
    case Variant::kEH: return "rope++eh";
    case Variant::kEC: return "rope++ec";
  }
  return "rope";
}

HeadLayout HeadLayout::from_config(Variant variant, int num_attention_heads, int num_key_value_heads,
                                   int head_dim) {
  ROPEPP_CHECK(num_attention_heads > 0, "invalid num_attention_heads {}: expected > 0", num_attention_heads);
  ROPEPP_CHECK(num_key_value_heads > 0, "invalid num_key_value_heads {}: expected > 0", num_key_value_heads);
  HeadLayout layout;
  layout.head_dim = head_dim;
  switch (variant) {
    case Variant::kVanilla:
      layout.n_query_heads = num_attention_heads;
      layout.n_kv_heads = num_key_value_heads;
      layout.imaginary = false;
      break;
    case Variant::kEH:
      ROPEPP_CHECK(num_attention_heads % 2 == 0 && num_key_value_heads % 2 == 0,
                   "RoPE++EH needs even head counts, got num_attention_heads {} and num_key_value_heads {}: "
                   "half of each become real heads and half imaginary",
                   num_attention_heads, num_key_value_heads);
      layout.n_query_heads = num_attention_heads / 2;
      layout.n_kv_heads = num_key_value_heads / 2;
      layout.imaginary = true;
      break;
    case Variant::kEC:
      layout.n_query_heads = num_attention_heads;
      layout.n_kv_heads = num_key_value_heads;
      layout.imaginary = true;
      break;
  }
  layout.validate();
  return layout;
}

void HeadLayout::validate() const {
  ROPEPP_CHECK(head_dim > 0 && head_dim % 2 == 0,
               "invalid head_dim {}: rotary embeddings need a positive even head size", head_dim);
  ROPEPP_CHECK(n_query_heads > 0, "invalid number of query heads {}: expected > 0", n_query_heads);
  ROPEPP_CHECK(n_kv_heads > 0, "invalid number of key/value heads {}: expected > 0", n_kv_heads);
  ROPEPP_CHECK(n_query_heads % n_kv_heads == 0,
               "{} key/value heads do not divide {} query heads: grouped-query attention needs "
               "num_attention_heads to be a multiple of num_key_value_heads",
               n_kv_heads, n_query_heads);
}

float AttentionArgs::effective_scale() const {
  return scale != 0.0f ? scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(layout.head_dim)));
}

void AttentionArgs::validate() const {
  layout.validate();
  ROPEPP_CHECK(rope != nullptr, "attention needs a rotary table");
  ROPEPP_CHECK(rope->head_dim() == layout.head_dim, "rotary table head_dim {} does not match the layout's {}",
               rope->head_dim(), layout.head_dim);
  ROPEPP_CHECK(n_queries > 0, "attention needs at least one query token, got {}", n_queries);
  ROPEPP_CHECK(n_keys > 0, "attention needs at least one key token, got {}", n_keys);
  ROPEPP_CHECK(query_positions != nullptr, "attention needs query positions");
  ROPEPP_CHECK(query_offset >= 0, "invalid query offset {}: expected >= 0", query_offset);
  if (causal) {
    ROPEPP_CHECK(query_offset + n_queries <= n_keys,
                 "causal attention with {} queries at offset {} needs at least {} keys, got {}", n_queries,
                 query_offset, query_offset + n_queries, n_keys);
  }
  ROPEPP_CHECK((query_segments == nullptr) == (key_segments == nullptr),
               "segment ids must be given for both queries and keys, or for neither");
  ROPEPP_CHECK(std::isfinite(noise.stddev) && noise.stddev >= 0.0, "invalid noise standard deviation {}",
               noise.stddev);
  ROPEPP_CHECK(!(noise.side == NoiseSide::kImaginary && !layout.imaginary),
               "noise on imaginary queries needs a RoPE++ layout, but this one has no imaginary heads");
}

AttentionArgs self_attention_args(const HeadLayout& layout, const RopeTable& rope, int64_t n_tokens,
                                  const int32_t* positions, const int32_t* segments, bool causal) {
  AttentionArgs args;
  args.layout = layout;
  args.rope = &rope;
  args.causal = causal;
  args.n_queries = n_tokens;
  args.n_keys = n_tokens;
  args.query_offset = 0;
  args.query_positions = positions;
  args.key_positions = positions;
  args.query_segments = segments;
  args.key_segments = segments;
  return args;
}

}  // namespace ropepp
