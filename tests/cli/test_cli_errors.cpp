// Bad input to `ropepp tokenize` and `ropepp logits`, run through the program
// at ROPEPP_BINARY: every case must exit non-zero with a message that names the
// file and the problem, and must leave no output or temporary file behind.
#include <gtest/gtest.h>

#include "cli/cli_test_util.h"
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

class CliErrors : public BinaryTest {
 protected:
  std::string log() const { return read(folder_ / "log.txt"); }

  fs::path write(const std::string& name, const std::string& contents) {
    const fs::path path = folder_ / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  // Writes the tiny RoPE++EH checkpoint (vocabulary 320) that `ropepp logits` runs on.
  fs::path make_model() {
    const fs::path model = folder_ / "model";
    EXPECT_EQ(run("init --preset tiny --variant eh --out " + model.string()), 0) << log();
    return model;
  }

  // Lists the files of `folder` whose names contain ".tmp-", the atomic writer's temporary files.
  std::vector<std::string> temporary_files(const fs::path& folder) const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".tmp-") != std::string::npos) names.push_back(name);
    }
    return names;
  }

};

TEST_F(CliErrors, TokenizeRejectsMalformedInput) {
  struct Case {
    std::string name;
    std::string contents;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"non_string.json", R"(["hello", 3])", "element 1 is a JSON number; expected a string"},
      {"truncated.json", R"(["hello")", "invalid JSON"},
      {"object.json", R"({"text": "hello"})", "expected a JSON array of strings, found a JSON object"},
      {"invalid_utf8.json", "[\"\xff\xfe\"]", "invalid JSON"},
      {"lone_surrogate.json", R"(["\ud800"])", "invalid JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path input = write(c.name, c.contents);
    EXPECT_NE(run("tokenize --tokenizer byte --input-json " + input.string()), 0);
    const std::string output = log();
    EXPECT_NE(output.find(input.string()), std::string::npos) << output;
    EXPECT_NE(output.find(c.message), std::string::npos) << output;
    // The parser quotes the bytes it read; invalid UTF-8 must not reach the terminal raw.
    EXPECT_EQ(output.find('\xff'), std::string::npos) << output;
  }

  EXPECT_NE(run("tokenize --tokenizer byte --input-json " + folder_.string()), 0);
  EXPECT_NE(log().find("is a folder"), std::string::npos) << log();

  const fs::path empty = write("empty.json", "[]");
  ASSERT_EQ(run("tokenize --tokenizer byte --input-json " + empty.string()), 0) << log();
  EXPECT_EQ(log(), "[]\n");
}

TEST_F(CliErrors, LogitsRejectsInvalidTokens) {
  const fs::path model = make_model();
  const fs::path out = folder_ / "logits.npy";
  struct Case {
    std::string name;
    std::string contents;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"empty.json", "[]", "the token array is empty"},
      {"negative.json", "[1, -1]", "element 1 = -1 is outside 0..2147483647"},
      {"fraction.json", "[1.5]", "element 0 is 1.5, expected an integer"},
      {"text.json", R"(["1"])", "element 0 is \"1\", expected an integer"},
      {"above_int32.json", "[4294967296]", "outside 0..2147483647"},
      {"above_vocabulary.json", "[0, 320]", "token 320 at index 1 is outside the model's vocabulary 0..319"},
      {"overflow.json", "[1e999]", "invalid JSON"},
      {"object.json", R"({"tokens": [1]})", "expected a JSON array of token ids"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path tokens = write(c.name, c.contents);
    EXPECT_NE(run("logits --model " + model.string() + " --tokens-file " + tokens.string() + " --out " +
                  out.string()),
              0);
    const std::string output = log();
    EXPECT_NE(output.find(tokens.string()), std::string::npos) << output;
    EXPECT_NE(output.find(c.message), std::string::npos) << output;
    EXPECT_FALSE(fs::exists(out));
  }

  const fs::path tokens = write("tokens.json", "[1, 2, 3]");
  const fs::path positions = write("positions.json", "[0, 1]");
  EXPECT_NE(run("logits --model " + model.string() + " --tokens-file " + tokens.string() + " --positions-file " +
                positions.string() + " --out " + out.string()),
            0);
  EXPECT_NE(log().find("has 2 positions but"), std::string::npos) << log();
  EXPECT_NE(run("logits --model " + model.string() + " --tokens-file " + folder_.string() + " --out " +
                out.string()),
            0);
  EXPECT_NE(log().find("is a folder"), std::string::npos) << log();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(temporary_files(folder_).empty());
}

TEST_F(CliErrors, LogitsRejectsInvalidOutPath) {
  const fs::path model = make_model();
  const fs::path tokens = write("tokens.json", "[1, 2, 3]");
  const std::string prefix = "logits --model " + model.string() + " --tokens-file " + tokens.string() + " --out ";

  const fs::path in_missing_folder = folder_ / "absent" / "logits.npy";
  EXPECT_NE(run(prefix + in_missing_folder.string()), 0);
  EXPECT_NE(log().find("folder " + (folder_ / "absent").string() + " does not exist"), std::string::npos) << log();

  // A folder as --out once failed only after the forward pass, with "cannot rename ...: Success".
  const fs::path folder_out = folder_ / "existing";
  fs::create_directory(folder_out);
  EXPECT_NE(run(prefix + folder_out.string()), 0);
  EXPECT_NE(log().find(folder_out.string() + ": is a folder"), std::string::npos) << log();
  EXPECT_TRUE(temporary_files(folder_).empty());

  const fs::path out = folder_ / "logits.npy";
  ASSERT_EQ(run(prefix + out.string()), 0) << log();
  // A .npy of version 1.0 has a 128-byte header here, then 3 x 320 float32 values.
  EXPECT_EQ(fs::file_size(out), 128u + 3u * 320u * 4u);
  EXPECT_TRUE(temporary_files(folder_).empty());
}

TEST_F(CliErrors, LogitsNamesBrokenCheckpointFiles) {
  const fs::path model = make_model();
  const fs::path tokens = write("tokens.json", "[1]");
  const std::string suffix = " --tokens-file " + tokens.string() + " --out " + (folder_ / "x.npy").string();

  fs::remove(model / "config.json");
  fs::create_directory(model / "config.json");
  EXPECT_NE(run("logits --model " + model.string() + suffix), 0);
  EXPECT_NE(log().find((model / "config.json").string() + ": is a folder"), std::string::npos) << log();

  fs::remove(model / "config.json");
  fs::create_symlink("config.json", model / "config.json");
  EXPECT_NE(run("logits --model " + model.string() + suffix), 0);
  EXPECT_NE(log().find("cannot access the file"), std::string::npos) << log();

  EXPECT_NE(run("logits --model " + (folder_ / "absent").string() + suffix), 0);
  EXPECT_NE(log().find("checkpoint folder " + (folder_ / "absent").string() + " not found"), std::string::npos)
      << log();
}

}  // namespace
