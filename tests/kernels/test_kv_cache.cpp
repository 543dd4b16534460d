// KVCache: sizes per variant, storage round trips and bounds checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/kv_cache.h"

namespace ropepp {
namespace {

std::vector<float> random_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> values(n);
  for (float& x : values) x = static_cast<float>(rng.gaussian());
  return values;
}

TEST(KVCache, EHHoldsHalfTheBytesOfVanilla) {
  // The RoPE++ 376M model's attention: 8 attention heads, 4 key/value heads, head_dim 128.
  const HeadLayout vanilla = HeadLayout::from_config(Variant::kVanilla, 8, 4, 128);
  const HeadLayout eh = HeadLayout::from_config(Variant::kEH, 8, 4, 128);
  const HeadLayout ec = HeadLayout::from_config(Variant::kEC, 8, 4, 128);
  for (const CacheType type : {CacheType::kF32, CacheType::kBF16}) {
    const KVCache vanilla_cache(8, vanilla.n_kv_heads, 128, 512, type);
    const KVCache eh_cache(8, eh.n_kv_heads, 128, 512, type);
    const KVCache ec_cache(8, ec.n_kv_heads, 128, 512, type);
    EXPECT_EQ(2 * eh_cache.bytes(), vanilla_cache.bytes());
    EXPECT_EQ(ec_cache.bytes(), vanilla_cache.bytes());
  }
  const int64_t f32_bytes = KVCache(8, 4, 128, 512, CacheType::kF32).bytes();
  EXPECT_EQ(f32_bytes, int64_t{2} * 8 * 4 * 512 * 128 * 4);
  EXPECT_EQ(KVCache(8, 4, 128, 512, CacheType::kBF16).bytes() * 2, f32_bytes);
}

TEST(KVCache, WriteThenViewReadsBack) {
  const int n_layers = 2, n_kv_heads = 3, head_dim = 6;
  const int64_t capacity = 10, start = 4, n_tokens = 5;
  const std::vector<float> keys = random_values(n_tokens * n_kv_heads * head_dim, 1);
  const std::vector<float> values = random_values(n_tokens * n_kv_heads * head_dim, 2);

  for (const CacheType type : {CacheType::kF32, CacheType::kBF16}) {
    KVCache cache(n_layers, n_kv_heads, head_dim, capacity, type);
    cache.write(1, start, n_tokens, keys.data(), values.data());
    const KVCacheView view = cache.view(1);
    EXPECT_EQ(view.type, type);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int h = 0; h < n_kv_heads; ++h) {
        for (int e = 0; e < head_dim; ++e) {
          const int64_t at = h * view.head_stride + (start + t) * view.token_stride + e;
          const float key = keys[(t * n_kv_heads + h) * head_dim + e];
          const float value = values[(t * n_kv_heads + h) * head_dim + e];
          if (type == CacheType::kF32) {
            EXPECT_EQ(static_cast<const float*>(view.keys)[at], key);
            EXPECT_EQ(static_cast<const float*>(view.values)[at], value);
          } else {
            EXPECT_EQ(static_cast<const bf16_t*>(view.keys)[at], float_to_bf16(key));
            EXPECT_EQ(static_cast<const bf16_t*>(view.values)[at], float_to_bf16(value));
          }
        }
      }
    }
    // Layer 0 was not written and must still be zero.
    const KVCacheView other = cache.view(0);
    if (type == CacheType::kF32) {
      EXPECT_EQ(static_cast<const float*>(other.keys)[start * other.token_stride], 0.0f);
    } else {
      EXPECT_EQ(static_cast<const bf16_t*>(other.keys)[start * other.token_stride], 0);
    }
  }
}

TEST(KVCache, RejectsOutOfRangeWrites) {
  KVCache cache(2, 1, 4, 8, CacheType::kF32);
  const std::vector<float> data(9 * 4, 1.0f);
  EXPECT_THROW(cache.write(0, 5, 4, data.data(), data.data()), Error);
  EXPECT_THROW(cache.write(0, -1, 1, data.data(), data.data()), Error);
  EXPECT_THROW(cache.write(2, 0, 1, data.data(), data.data()), Error);
  EXPECT_THROW(cache.write(0, 0, 1, nullptr, data.data()), Error);
  EXPECT_THROW(cache.view(-1), Error);
  EXPECT_THROW(cache.view(2), Error);
  EXPECT_NO_THROW(cache.write(0, 4, 4, data.data(), data.data()));
}

TEST(KVCache, LengthStaysWithinCapacity) {
  KVCache cache(1, 1, 4, 8, CacheType::kBF16);
  EXPECT_EQ(cache.length(), 0);
  cache.set_length(8);
  EXPECT_EQ(cache.length(), 8);
  EXPECT_THROW(cache.set_length(9), Error);
  EXPECT_THROW(cache.set_length(-1), Error);
  cache.clear();
  EXPECT_EQ(cache.length(), 0);
}

TEST(KVCache, RejectsInvalidShape) {
  EXPECT_THROW(KVCache(0, 1, 4, 8, CacheType::kF32), Error);
  EXPECT_THROW(KVCache(1, 0, 4, 8, CacheType::kF32), Error);
  EXPECT_THROW(KVCache(1, 1, 0, 8, CacheType::kF32), Error);
  EXPECT_THROW(KVCache(1, 1, 4, 0, CacheType::kF32), Error);
}

TEST(KVCache, RejectsOverflowingWrite) {
  // start + n_tokens overflows int64, so only a subtraction-based bound catches it.
  KVCache cache(1, 1, 4, 8, CacheType::kF32);
  const std::vector<float> data(4, 1.0f);
  EXPECT_THROW(cache.write(0, INT64_MAX, 1, data.data(), data.data()), Error);
  EXPECT_THROW(cache.write(0, 1, INT64_MAX, data.data(), data.data()), Error);
  EXPECT_THROW(cache.write(0, 9, 0, data.data(), data.data()), Error);
  EXPECT_NO_THROW(cache.write(0, 8, 0, nullptr, nullptr));
}

TEST(KVCache, RejectsUnaddressableShape) {
  // 2^62 tokens x 16 elements overflows a 64-bit element count.
  EXPECT_THROW(KVCache(1, 1, 16, int64_t{1} << 62, CacheType::kBF16), Error);
  EXPECT_THROW(KVCache(4096, 16384, 1 << 20, int64_t{1} << 40, CacheType::kF32), Error);
}

}  // namespace
}  // namespace ropepp
