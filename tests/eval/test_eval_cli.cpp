// `ropepp eval ...` through the program at ROPEPP_BINARY, on checkpoints made
// by `ropepp init`.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;

class EvalCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ROPEPP_BINARY)) GTEST_SKIP() << "the ropepp program is not built at " << ROPEPP_BINARY;
    folder_ = fs::temp_directory_path() / ("ropepp_eval_cli_" + std::to_string(::getpid()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    std::string text;
    for (int i = 0; text.size() < 1500; ++i) text += "Call me Ishmael. Some years ago, never mind how long " + std::to_string(i) + ". ";
    std::ofstream(folder_ / "text.txt") << text;
    for (const char* variant : {"rope", "ec"}) {
      ASSERT_EQ(run(fmt("init --preset tiny --variant {} --vocab-size 320 --max-position 64 --out {}", variant,
                        (folder_ / variant).string())),
                0);
    }
  }

  void TearDown() override {
    if (!folder_.empty()) fs::remove_all(folder_);
  }

  template <typename... Args>
  static std::string fmt(const char* format, Args... args) {
    std::string result = format;
    (replace_next(result, std::string(args)), ...);
    return result;
  }
  static void replace_next(std::string& text, const std::string& value) {
    text.replace(text.find("{}"), 2, value);
  }

  // Runs `ropepp ARGS` with output to a log file; returns the exit status.
  int run(const std::string& arguments) {
    const std::string command =
        std::string(ROPEPP_BINARY) + " " + arguments + " >>" + (folder_ / "log.txt").string() + " 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string models() const {
    return "--model " + (folder_ / "rope").string() + " --model " + (folder_ / "ec").string();
  }

  void expect_files(const std::vector<std::string>& names) const {
    for (const std::string& name : names) {
      EXPECT_TRUE(fs::exists(folder_ / "out" / name)) << name << " missing; log:\n" << log();
    }
  }

  std::string log() const {
    std::ifstream stream(folder_ / "log.txt");
    std::ostringstream buffer;
    buffer << stream.rdbuf();
    return buffer.str();
  }

  fs::path folder_;
};

TEST_F(EvalCommand, PerplexityWritesCsvAndJson) {
  const std::string out = (folder_ / "out").string();
  ASSERT_EQ(run("eval ppl " + models() + " --text " + (folder_ / "text.txt").string() +
                " --window 32 --stride 8 --out " + out),
            0)
      << log();
  expect_files({"perplexity.csv", "perplexity.json"});
}

TEST_F(EvalCommand, EveryEvaluationWritesItsFiles) {
  const std::string common = models() + " --text " + (folder_ / "text.txt").string() + " --out " +
                             (folder_ / "out").string();
  EXPECT_EQ(run("eval extrapolate " + common + " --lengths 16,32,64 --tokens-per-length 64 --scalings none linear:2"),
            0)
      << log();
  EXPECT_EQ(run("eval passkey " + common + " --lengths 300 --depths 0,1 --trials 1"), 0) << log();
  EXPECT_EQ(run("eval noise " + common + " --stddevs 0,1 --length 32 --tokens 64"), 0) << log();
  EXPECT_EQ(run("eval attention " + common + " --tokens 24"), 0) << log();
  EXPECT_EQ(run("eval curves --head-dim 16 --max-distance 64 --points 9 --samples 50 --out " +
                (folder_ / "out").string()),
            0)
      << log();
  expect_files({"extrapolation.csv", "extrapolation.png", "passkey.csv", "passkey.png", "noise.csv",
                "noise_perplexity.png", "attention_distance.csv", "attention_distance.png", "attention_rope_layer0.png",
                "attention_ec_layer1.png", "characteristic_curves.csv", "characteristic_curves.png"});
}

TEST_F(EvalCommand, InvalidInputsFailWithMessage) {
  const std::string common = models() + " --out " + (folder_ / "out").string();
  EXPECT_EQ(run("eval ppl " + common + " --text " + (folder_ / "missing.txt").string()), 1);
  EXPECT_NE(log().find("missing.txt: text file or folder not found"), std::string::npos) << log();
  EXPECT_EQ(run("eval ppl " + common + " --text " + (folder_ / "text.txt").string() + " --window 8 --stride 8"), 1);
  EXPECT_NE(log().find("invalid stride 8"), std::string::npos) << log();
  EXPECT_EQ(run("eval extrapolate " + common + " --text " + (folder_ / "text.txt").string() + " --scalings yarn:2"),
            1);
  EXPECT_NE(log().find("invalid scaling 'yarn:2'"), std::string::npos) << log();
}

}  // namespace
