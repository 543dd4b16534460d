// Shared helpers of the io tests: a scratch folder per test, raw file writers
// for hand-made corrupt files, small model configs and deterministic weights.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace ropepp::testing {

namespace fs = std::filesystem;

// A fresh folder under the system temporary folder, removed after the test.
class ScratchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    scratch_ = fs::temp_directory_path() /
               (std::string("ropepp-io-") + info->test_suite_name() + "-" + info->name() + "-" +
                std::to_string(::getpid()));
    fs::remove_all(scratch_);
    fs::create_directories(scratch_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(scratch_, ignored);
  }

  fs::path scratch_;
};

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(stream.good()) << "cannot write " << path;
}

inline std::string read_bytes(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

// A safetensors file from a header text and a data section, with the 8-byte
// little-endian size field computed from the header (or given explicitly).
inline std::string safetensors_bytes(const std::string& header, const std::string& data, int64_t size_field = -1) {
  const uint64_t size = size_field < 0 ? header.size() : static_cast<uint64_t>(size_field);
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &size, sizeof(size));
  return bytes + header + data;
}

// Runs `action` and checks that it throws ropepp::Error whose message contains
// every one of `parts`.
inline void expect_error(const std::function<void()>& action, std::initializer_list<std::string> parts) {
  try {
    action();
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "message lacks \"" << part << "\": " << message;
    }
    return;
  } catch (const std::exception& other) {
    ADD_FAILURE() << "expected ropepp::Error, got another exception: " << other.what();
    return;
  }
  ADD_FAILURE() << "expected ropepp::Error, nothing was thrown";
}

// A small Llama config: hidden 32, 2 layers, H = 4, G = 2, head_dim 8.
inline ModelConfig small_config(Variant variant, bool tied = false) {
  ModelConfig config;
  config.vocab_size = 61;
  config.hidden_size = 32;
  config.intermediate_size = 48;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 8;
  config.tie_word_embeddings = tied;
  config.bos_token_id = 1;
  config.eos_token_ids = {2};
  config.variant = variant;
  return config;
}

// Deterministic weights for every tensor a config expects.
struct ModelWeights {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, std::vector<int64_t>> shapes;

  std::vector<TensorToWrite> to_write() const {
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, shape] : shapes) tensors.push_back({name, shape, values.at(name).data()});
    return tensors;
  }
};

inline ModelWeights random_weights(const ModelConfig& config, uint32_t seed) {
  ModelWeights weights;
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  weights.shapes = expected_tensor_shapes(config);
  for (const auto& [name, shape] : weights.shapes) {
    int64_t count = 1;
    for (const int64_t dimension : shape) count *= dimension;
    std::vector<float>& values = weights.values[name];
    values.resize(static_cast<size_t>(count));
    for (float& value : values) value = normal(generator);
  }
  return weights;
}

}  // namespace ropepp::testing
