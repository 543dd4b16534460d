// A key/value cache for incremental decoding: per layer, per key/value head, a
// contiguous run of tokens ([layer][kv_head][capacity][head_dim]), keys stored
// already rotated, in f32 or bf16. An EH model has half the key/value heads of
// the vanilla model of the same config, so its cache has half the bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/huge_pages.h"
#include "kernels/attention.h"

namespace ropepp {

class KVCache {
 public:
  KVCache() = default;
  KVCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity, CacheType type);

  int n_layers() const { return n_layers_; }
  int n_kv_heads() const { return n_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int64_t capacity() const { return capacity_; }
  CacheType type() const { return type_; }

  // Tokens stored (the same in every layer once a step is complete).
  int64_t length() const { return length_; }
  void set_length(int64_t length);  // truncate or commit; must be <= capacity
  void clear() { length_ = 0; }

  // Stores n_tokens keys (rotated) and values, each [n_tokens][n_kv_heads][head_dim],
  // at token indices start .. start+n_tokens-1 of one layer. Throws when they
  // do not fit in the capacity.
  void write(int layer, int64_t start, int64_t n_tokens, const float* rotated_keys, const float* values);

  KVCacheView view(int layer) const;

  // Bytes of keys and values held for the whole capacity.
  int64_t bytes() const;

 private:
  size_t offset(int layer, int kv_head, int64_t token) const;

  int n_layers_ = 0;
  int n_kv_heads_ = 0;
  int head_dim_ = 0;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  CacheType type_ = CacheType::kF32;
  HugePageVector<float> keys_f32_, values_f32_;
  HugePageVector<bf16_t> keys_bf16_, values_bf16_;
};

}  // namespace ropepp
