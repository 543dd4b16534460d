// Logits of the C++ model against tests/model/reference_llama.py, an
// independent float64 numpy implementation of the RoPE++ authors' eager code.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "model/model.h"
#include "model_test_util.h"

namespace ropepp {
namespace {

using test::TempDir;
using test::tiny_config;

bool numpy_available() { return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

// One checkpoint compared in one configuration.
struct ReferenceCase {
  std::string label;
  ModelConfig config;
  DType checkpoint_dtype = DType::kF32;
  MatmulPrecision precision = MatmulPrecision::kF32;
  int64_t max_shard_bytes = 0;
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;  // empty: 0..T-1
  std::filesystem::path directory;
  std::vector<float> logits;  // from ropepp
};

// Runs every case through the Python reference in one process and returns the
// reference logits per case.
std::vector<std::vector<float>> run_reference(const std::vector<ReferenceCase>& cases, const TempDir& temp) {
  nlohmann::json jobs = nlohmann::json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    nlohmann::json job;
    job["model"] = cases[i].directory.string();
    job["tokens"] = cases[i].tokens;
    if (!cases[i].positions.empty()) job["positions"] = cases[i].positions;
    job["out"] = (temp.path() / fmt::format("reference_{}.npy", i)).string();
    jobs.push_back(job);
  }
  const auto jobs_file = temp.path() / "jobs.json";
  std::ofstream(jobs_file) << jobs.dump();
  const std::string command = fmt::format("/usr/bin/python3 {}/tests/model/reference_llama.py {}",
                                          ROPEPP_SOURCE_DIR, jobs_file.string());
  EXPECT_EQ(std::system(command.c_str()), 0) << command;

  std::vector<std::vector<float>> results;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<int64_t> shape;
    results.push_back(read_npy_f32(temp.path() / fmt::format("reference_{}.npy", i), shape));
    EXPECT_EQ(shape.size(), 2u);
  }
  return results;
}

// Runs ropepp on each case and compares with the reference.
void check_cases(std::vector<ReferenceCase>& cases, const TempDir& temp, double tolerance) {
  for (size_t i = 0; i < cases.size(); ++i) {
    ReferenceCase& c = cases[i];
    c.directory = temp.path() / fmt::format("model_{}", i);
    Weights::random(c.config, 1000 + i, 0.2).save(c.directory, c.checkpoint_dtype, c.max_shard_bytes);
    ModelOptions options;
    options.weights_precision = c.precision;
    Model model = Model::load(c.directory, options);
    c.logits.resize(c.tokens.size() * static_cast<size_t>(c.config.vocab_size));
    ForwardInput input;
    input.tokens = c.tokens;
    input.positions = c.positions;
    model.forward(input, c.logits.data());
  }
  const std::vector<std::vector<float>> reference = run_reference(cases, temp);
  ASSERT_EQ(reference.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const double error = test::relative_max_error(cases[i].logits, reference[i]);
    EXPECT_LT(error, tolerance) << cases[i].label;
    if (std::getenv("ROPEPP_PRINT_ERRORS") != nullptr) std::printf("%s: %.3g\n", cases[i].label.c_str(), error);
  }
}

const std::vector<std::pair<std::string, RopeScaling>>& scalings() {
  static const std::vector<std::pair<std::string, RopeScaling>> list = {
      {"none", RopeScaling{}},
      {"linear4", test::scaling_of(RopeScalingType::kLinear, 4.0)},
      {"yarn-paper8", test::scaling_of(RopeScalingType::kYarnPaper, 8.0)},
      {"yarn-hf8", test::scaling_of(RopeScalingType::kYarnHF, 8.0)},
  };
  return list;
}

// Positions past the 4096-token training context, with gaps, so the scalings
// and large angles matter.
std::vector<int32_t> long_positions(size_t n) {
  std::vector<int32_t> positions(n);
  for (size_t i = 0; i < n; ++i) positions[i] = static_cast<int32_t>(5000 + 37 * i);
  return positions;
}

// f32 compute: every variant x scaling x checkpoint dtype (F32, BF16, F16) x
// tied/untied.
// Tolerance 1e-4: f32 products of length <= 80 and f32 softmax give relative
// errors near 1e-6; 1e-4 leaves room for f32 angles at positions ~ 6000.
TEST(ReferenceLogits, F32ComputeAllCases) {
  if (!numpy_available()) GTEST_SKIP() << "/usr/bin/python3 with numpy is needed (apt-get install python3-numpy)";
  TempDir temp;
  std::vector<ReferenceCase> cases;
  uint64_t seed = 1;
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const auto& [scaling_name, scaling] : scalings()) {
      for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
        for (bool tied : {false, true}) {
          ReferenceCase c;
          c.label = fmt::format("{} {} {} {}", variant_name(variant), scaling_name, dtype_name(dtype),
                                tied ? "tied" : "untied");
          c.config = tiny_config(variant, tied, scaling);
          c.checkpoint_dtype = dtype;
          c.tokens = test::random_tokens(19, c.config.vocab_size, seed++);
          if (scaling.type != RopeScalingType::kNone || seed % 2 == 0) c.positions = long_positions(19);
          cases.push_back(std::move(c));
        }
      }
    }
  }
  check_cases(cases, temp, 1e-4);
}

// A sharded checkpoint (one tensor per shard at this size) reads the same.
TEST(ReferenceLogits, ShardedCheckpoint) {
  if (!numpy_available()) GTEST_SKIP() << "/usr/bin/python3 with numpy is needed (apt-get install python3-numpy)";
  TempDir temp;
  std::vector<ReferenceCase> cases(1);
  cases[0].label = "sharded ec";
  cases[0].config = tiny_config(Variant::kEC);
  cases[0].max_shard_bytes = 20000;
  cases[0].tokens = test::random_tokens(11, cases[0].config.vocab_size, 7);
  check_cases(cases, temp, 1e-4);
  EXPECT_TRUE(std::filesystem::exists(cases[0].directory / "model.safetensors.index.json"));
}

// bf16 matrix products round both operands to bf16 (relative error 2^-9 per
// operand), so each product carries ~0.4% relative noise. The residual stream
// accumulates it over 2 layers and the LM head, and the measured error is
// 0.6-1.3%. The bound 3e-2 leaves margin and still catches layout mistakes,
// which give errors of order 1.
TEST(ReferenceLogits, Bf16ComputeEachVariant) {
  if (!numpy_available()) GTEST_SKIP() << "/usr/bin/python3 with numpy is needed (apt-get install python3-numpy)";
  TempDir temp;
  std::vector<ReferenceCase> cases;
  for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (int64_t n_tokens : {3, 17}) {  // GEMV (decode-sized) and GEMM paths
      ReferenceCase c;
      c.label = fmt::format("{} bf16 compute T={}", variant_name(variant), n_tokens);
      c.config = tiny_config(variant, false, test::scaling_of(RopeScalingType::kYarnPaper, 4.0));
      c.checkpoint_dtype = DType::kBF16;
      c.precision = MatmulPrecision::kBF16;
      c.tokens = test::random_tokens(n_tokens, c.config.vocab_size, 40 + n_tokens);
      cases.push_back(std::move(c));
    }
  }
  check_cases(cases, temp, 3e-2);
}

}  // namespace
}  // namespace ropepp
