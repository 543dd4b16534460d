#include "kernels/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace ropepp {

KVCache::KVCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity, CacheType type)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), capacity_(capacity), type_(type) {
  ROPEPP_CHECK(n_layers > 0 && n_kv_heads > 0 && head_dim > 0 && capacity > 0,
               "invalid KV cache shape: {} layers, {} key/value heads, head_dim {}, capacity {}", n_layers,
               n_kv_heads, head_dim, capacity);
  // An overflowing element count would allocate a short buffer that write() then
  // overruns. The bound of INT64_MAX / 8 keeps bytes() (keys and values, 4 bytes each) exact.
  size_t elements = 0;
  const bool overflow =
      __builtin_mul_overflow(static_cast<size_t>(n_layers) * static_cast<size_t>(n_kv_heads),
                             static_cast<size_t>(capacity), &elements) ||
      __builtin_mul_overflow(elements, static_cast<size_t>(head_dim), &elements) ||
      elements > static_cast<size_t>(INT64_MAX) / 8;
  ROPEPP_CHECK(!overflow,
               "KV cache of {} layers x {} key/value heads x {} tokens x head_dim {} is too large to address: "
               "lower the context size",
               n_layers, n_kv_heads, capacity, head_dim);
  if (type == CacheType::kF32) {
    keys_f32_.assign(elements, 0.0f);
    values_f32_.assign(elements, 0.0f);
  } else {
    keys_bf16_.assign(elements, 0);
    values_bf16_.assign(elements, 0);
  }
}

void KVCache::set_length(int64_t length) {
  ROPEPP_CHECK(length >= 0 && length <= capacity_, "KV cache length {} is outside 0..{} (the capacity)", length,
               capacity_);
  length_ = length;
}

size_t KVCache::offset(int layer, int kv_head, int64_t token) const {
  return ((static_cast<size_t>(layer) * n_kv_heads_ + kv_head) * static_cast<size_t>(capacity_) +
          static_cast<size_t>(token)) *
         head_dim_;
}

void KVCache::write(int layer, int64_t start, int64_t n_tokens, const float* rotated_keys, const float* values) {
  ROPEPP_CHECK(layer >= 0 && layer < n_layers_, "KV cache layer {} is outside 0..{}", layer, n_layers_ - 1);
  // Compared as n_tokens <= capacity_ - start, because start + n_tokens can overflow.
  ROPEPP_CHECK(start >= 0 && n_tokens >= 0 && start <= capacity_ && n_tokens <= capacity_ - start,
               "KV cache is full: {} tokens from index {} do not fit in its capacity of {} tokens (raise the context "
               "size)",
               n_tokens, start, capacity_);
  ROPEPP_CHECK(n_tokens == 0 || (rotated_keys != nullptr && values != nullptr),
               "KV cache write of {} tokens needs key and value buffers", n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int h = 0; h < n_kv_heads_; ++h) {
      const float* key = rotated_keys + (t * n_kv_heads_ + h) * head_dim_;
      const float* value = values + (t * n_kv_heads_ + h) * head_dim_;
      const size_t at = offset(layer, h, start + t);
      if (type_ == CacheType::kF32) {
        std::copy(key, key + head_dim_, keys_f32_.begin() + static_cast<std::ptrdiff_t>(at));
        std::copy(value, value + head_dim_, values_f32_.begin() + static_cast<std::ptrdiff_t>(at));
      } else {
        for (int e = 0; e < head_dim_; ++e) {
          keys_bf16_[at + e] = float_to_bf16(key[e]);
          values_bf16_[at + e] = float_to_bf16(value[e]);
        }
      }
    }
  }
}

KVCacheView KVCache::view(int layer) const {
  ROPEPP_CHECK(layer >= 0 && layer < n_layers_, "KV cache layer {} is outside 0..{}", layer, n_layers_ - 1);
  KVCacheView view;
  view.type = type_;
  const size_t at = offset(layer, 0, 0);
  if (type_ == CacheType::kF32) {
    view.keys = keys_f32_.data() + at;
    view.values = values_f32_.data() + at;
  } else {
    view.keys = keys_bf16_.data() + at;
    view.values = values_bf16_.data() + at;
  }
  view.token_stride = head_dim_;
  view.head_stride = capacity_ * head_dim_;
  return view;
}

int64_t KVCache::bytes() const {
  const int64_t elements = static_cast<int64_t>(n_layers_) * n_kv_heads_ * capacity_ * head_dim_;
  return 2 * elements * (type_ == CacheType::kF32 ? 4 : 2);
}

}  // namespace ropepp
