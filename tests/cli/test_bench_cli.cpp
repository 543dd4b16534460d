// `ropepp bench machine` and `ropepp bench attention` through the program at
// ROPEPP_BINARY, in their --quick smoke-run mode.
#include <gtest/gtest.h>

#include "cli/cli_test_util.h"
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

using BenchCommand = BinaryTest;

TEST_F(BenchCommand, MachineWritesCeilings) {
  const fs::path json_path = folder_ / "machine.json";
  ASSERT_EQ(run("bench machine --quick --json " + json_path.string()), 0) << read(folder_ / "log.txt");
  const nlohmann::json json = nlohmann::json::parse(read(json_path));
  EXPECT_GT(json.at("sgemm_gflops").get<double>(), 0.0);
  EXPECT_GT(json.at("triad_gbs").get<double>(), 0.0);
  EXPECT_GT(json.at("read_gbs").get<double>(), 0.0);
  EXPECT_GE(json.at("threads").get<int>(), 1);
}

TEST_F(BenchCommand, AttentionWritesTableJsonAndCsv) {
  const fs::path json_path = folder_ / "attention.json";
  const fs::path csv_path = folder_ / "attention.csv";
  ASSERT_EQ(run("bench attention --quick --variants rope,ec --prefill-lengths 32 --decode-lengths 300 "
                "--cache-types bf16 --json " + json_path.string() + " --csv " + csv_path.string()),
            0)
      << read(folder_ / "log.txt");

  const std::string log = read(folder_ / "log.txt");
  EXPECT_NE(log.find("Causal prefill"), std::string::npos) << log;
  EXPECT_NE(log.find("Decode of one token"), std::string::npos) << log;

  const nlohmann::json json = nlohmann::json::parse(read(json_path));
  ASSERT_EQ(json.at("prefill").size(), 2u);
  ASSERT_EQ(json.at("decode").size(), 2u);
  for (const auto& row : json.at("prefill")) {
    EXPECT_EQ(row.at("tokens").get<int>(), 32);
    EXPECT_GT(row.at("forward_s").get<double>(), 0.0);
    EXPECT_GT(row.at("forward_backward_s").get<double>(), 0.0);
  }
  for (const auto& row : json.at("decode")) {
    EXPECT_EQ(row.at("cache_type").get<std::string>(), "bf16");
    EXPECT_EQ(row.at("cache_tokens").get<int>(), 300);
    EXPECT_GT(row.at("seconds").get<double>(), 0.0);
  }
  // RoPE++EC keeps RoPE's cache: the same bytes per layer.
  EXPECT_EQ(json.at("decode")[0].at("cache_bytes"), json.at("decode")[1].at("cache_bytes"));

  const std::string csv = read(csv_path);
  EXPECT_EQ(csv.rfind("kind,variant,", 0), 0u) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 4 + 2) << csv;  // header, 2 x (forward, f+b), 2 decode
}

TEST_F(BenchCommand, AttentionRejectsInvalidLengths) {
  EXPECT_NE(run("bench attention --quick --prefill-lengths 64,abc"), 0);
  EXPECT_NE(read(folder_ / "log.txt").find("invalid --prefill-lengths entry 'abc'"), std::string::npos)
      << read(folder_ / "log.txt");
  EXPECT_NE(run("bench attention --quick --cache-types f16"), 0);
  EXPECT_NE(read(folder_ / "log.txt").find("invalid --cache-types entry 'f16'"), std::string::npos);
}

}  // namespace
