// Shared helpers of the model tests: small configs, temporary folders and
// error measures.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "io/model_config.h"
#include "kernels/attention.h"
#include "kernels/rope.h"

namespace ropepp::test {

// A small model with shapes that catch layout mistakes: head_dim differs from
// hidden / H, the vocabulary is odd, and H / G = 2.
inline ModelConfig tiny_config(Variant variant, bool tied = false, RopeScaling scaling = {}) {
  ModelConfig config;
  config.vocab_size = 97;
  config.hidden_size = 48;
  config.intermediate_size = 80;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 16;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.max_position_embeddings = 4096;
  config.tie_word_embeddings = tied;
  config.bos_token_id = 1;
  config.eos_token_ids = {2};
  config.torch_dtype = "float32";
  config.variant = variant;
  config.rope_scaling = scaling;
  return config;
}

inline RopeScaling scaling_of(RopeScalingType type, double factor) {
  RopeScaling scaling;
  scaling.type = type;
  scaling.factor = factor;
  return scaling;
}

// A fresh folder under the system temporary folder, removed on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("ropepp_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// max |a - b| / max |b|: the relative error measure of the model tests.
inline double relative_max_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double max_diff = 0.0;
  double max_value = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    max_value = std::max(max_value, std::fabs(static_cast<double>(b[i])));
  }
  return max_value > 0.0 ? max_diff / max_value : max_diff;
}

inline std::vector<int32_t> random_tokens(int64_t n, int vocab, uint64_t seed) {
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& token : tokens) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    token = static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(vocab));
  }
  return tokens;
}

}  // namespace ropepp::test
