// Invalid tokenizer files must fail with a ropepp::Error that names the file
// and the field; valid small files must load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A small valid byte-level BPE tokenizer.json: the 256 byte tokens, the
// merges "a b" -> "ab" and "ab c" -> "abc", and two special tokens.
json small_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 258}, {"content", "<|begin_of_text|>"}, {"special", true}},
        {{"id", 259}, {"content", "<|end_of_text|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c"}}, {"ignore_merges", false}}},
  };
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ropepp_loader_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& contents) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  // Loads `path` and checks that it fails with every part of `expected` in the message.
  void expect_error(const std::string& path, const std::vector<std::string>& expected) {
    try {
      (void)load_tokenizer(path);
      ADD_FAILURE() << "loading " << path << " succeeded; expected an error with " << expected[0];
    } catch (const Error& error) {
      const std::string message = error.what();
      for (const std::string& part : expected) {
        EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nexpected in it: " << part;
      }
    }
  }

  // Writes the small tokenizer changed by `edit` and checks the load error.
  void expect_json_error(const std::function<void(json&)>& edit, const std::vector<std::string>& expected) {
    json tokenizer = small_tokenizer_json();
    edit(tokenizer);
    const fs::path path = write("tokenizer.json", tokenizer.dump());
    std::vector<std::string> with_file = expected;
    with_file.push_back(path.string());
    expect_error(path.string(), with_file);
  }

  fs::path dir_;
};

TEST_F(LoaderTest, SmallTokenizerLoadsAndMerges) {
  const fs::path path = write("tokenizer.json", small_tokenizer_json().dump());
  const auto tokenizer = load_tokenizer(dir_.string());  // the folder form
  EXPECT_EQ(tokenizer->vocab_size(), 260);
  EXPECT_EQ(tokenizer->encode("abc abd"), (std::vector<TokenId>{257, ' ', 256, 'd'}));
  EXPECT_EQ(tokenizer->encode("<|end_of_text|>x", true), (std::vector<TokenId>{259, 'x'}));
  EXPECT_EQ(tokenizer->bos_id(), 258);
  EXPECT_EQ(tokenizer->eos_id(), 259);
  EXPECT_EQ(load_tokenizer(path.string())->vocab_size(), 260);  // the file form
}

TEST_F(LoaderTest, TokenizerConfigSetsBosEos) {
  write("tokenizer.json", small_tokenizer_json().dump());
  write("tokenizer_config.json", R"({"bos_token": {"content": "<|end_of_text|>"}, "eos_token": "<|begin_of_text|>"})");
  const auto tokenizer = load_tokenizer(dir_.string());
  EXPECT_EQ(tokenizer->bos_id(), 259);
  EXPECT_EQ(tokenizer->eos_id(), 258);

  write("tokenizer_config.json", R"({"eos_token": "<|missing|>"})");
  expect_error(dir_.string(), {"tokenizer_config.json", "eos_token", "<|missing|>"});
}

TEST_F(LoaderTest, AddedTokenStripsWhitespace) {
  json tokenizer = small_tokenizer_json();
  tokenizer["added_tokens"].push_back({{"id", 260}, {"content", "<mask>"}, {"special", false}, {"lstrip", true},
                                       {"rstrip", true}});
  write("tokenizer.json", tokenizer.dump());
  const auto loaded = load_tokenizer(dir_.string());
  // Non-special added tokens are matched even without allow_special.
  EXPECT_EQ(loaded->encode("a  <mask>  b"), (std::vector<TokenId>{'a', 260, 'b'}));
}

TEST_F(LoaderTest, HugeSingleClassRunsEncode) {
  // Multi-megabyte pre-tokens stress PCRE2's JIT stack (the lookahead in
  // \s+(?!\S)) and the heap merge path.
  write("tokenizer.json", small_tokenizer_json().dump());
  const auto tokenizer = load_tokenizer(dir_.string());
  for (const std::string& text : {std::string(4 << 20, ' ') + "x", std::string(4 << 20, 'a'),
                                  std::string(1 << 20, '\n') + "ab" + std::string(1 << 20, '\t')}) {
    const std::vector<TokenId> ids = tokenizer->encode(text);
    EXPECT_EQ(tokenizer->decode(ids), text);
  }
}

TEST_F(LoaderTest, RejectsBadVersion) {
  expect_json_error([](json& t) { t["version"] = "2.0"; }, {"version", "\"2.0\""});
  expect_json_error([](json& t) { t.erase("version"); }, {"version is missing"});
}

TEST_F(LoaderTest, RejectsOtherModels) {
  expect_json_error([](json& t) { t["model"]["type"] = "WordPiece"; }, {"model.type", "WordPiece"});
  expect_json_error([](json& t) { t["model"]["byte_fallback"] = true; }, {"model.byte_fallback"});
  expect_json_error([](json& t) { t["normalizer"] = {{"type", "NFC"}}; }, {"normalizer", "NFC"});
  expect_json_error([](json& t) { t["pre_tokenizer"] = {{"type", "Whitespace"}}; }, {"pre_tokenizer", "Whitespace"});
  expect_json_error([](json& t) { t["pre_tokenizer"] = nullptr; }, {"ByteLevel"});
  expect_json_error([](json& t) { t["decoder"] = {{"type", "WordPiece"}}; }, {"decoder", "WordPiece"});
}

TEST_F(LoaderTest, RejectsMissingVocabOrMerges) {
  expect_json_error([](json& t) { t["model"].erase("vocab"); }, {"model.vocab is missing"});
  expect_json_error([](json& t) { t["model"].erase("merges"); }, {"model.merges is missing"});
  expect_json_error([](json& t) { t["model"]["merges"] = "a b"; }, {"model.merges", "string", "array"});
  expect_json_error([](json& t) { t.erase("model"); }, {"model is missing"});
}

TEST_F(LoaderTest, RejectsMergesWithUnknownTokens) {
  expect_json_error([](json& t) { t["model"]["merges"].push_back("a zz"); }, {"model.merges[2]", "\"zz\"", "not in"});
  expect_json_error([](json& t) { t["model"]["merges"].push_back("b c"); }, {"model.merges[2]", "\"bc\"", "produces"});
  expect_json_error([](json& t) { t["model"]["merges"].push_back("abc"); }, {"model.merges[2]", "one space"});
  expect_json_error([](json& t) { t["model"]["merges"].push_back(json::array({"a"})); }, {"model.merges[2]"});
}

TEST_F(LoaderTest, RejectsBadIds) {
  expect_json_error([](json& t) { t["model"]["vocab"]["abc"] = 900; }, {"\"abc\"", "900", "out of range"});
  expect_json_error([](json& t) { t["model"]["vocab"]["abc"] = -1; }, {"\"abc\"", "-1", "out of range"});
  expect_json_error([](json& t) { t["model"]["vocab"]["abc"] = 256; }, {"duplicate id 256", "\"ab\"", "\"abc\""});
  expect_json_error([](json& t) { t["model"]["vocab"]["abc"] = "x"; }, {"model.vocab", "integer"});
  expect_json_error([](json& t) { t["added_tokens"][1]["id"] = 258; }, {"added_tokens", "duplicate id 258"});
  expect_json_error([](json& t) { t["added_tokens"][1]["id"] = 270; }, {"added_tokens", "no token has id 259"});
  expect_json_error([](json& t) { t["added_tokens"][1].erase("content"); }, {"added_tokens[1].content"});
  expect_json_error([](json& t) { t["added_tokens"][0]["single_word"] = true; }, {"added_tokens[0].single_word"});
}

TEST_F(LoaderTest, RejectsMissingByteToken) {
  expect_json_error(
      [](json& t) {
        t["model"]["vocab"].erase("z");
        t["model"]["vocab"]["z-replacement"] = static_cast<int>('z');
      },
      {"byte 0x7A", "256 single-byte tokens"});
}

TEST_F(LoaderTest, RejectsInvalidRegexAndJson) {
  expect_json_error(
      [](json& t) {
        t["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}},
                                {{"type", "ByteLevel"}, {"use_regex", false}}}}};
      },
      {"pre_tokenizer.pretokenizers[0].pattern", "invalid pre-tokenizer regex"});
  const fs::path path = write("broken.json", "{\"version\": \"1.0\", ");
  expect_error(path.string(), {path.string(), "invalid JSON"});
}

TEST_F(LoaderTest, SplitStringPatternLoads) {
  // A literal Split pattern once failed to compile: PCRE2 rejects PCRE2_UCP with PCRE2_LITERAL.
  json tokenizer = small_tokenizer_json();
  tokenizer["pre_tokenizer"] = {{"type", "Sequence"},
                                {"pretokenizers",
                                 {{{"type", "Split"}, {"pattern", {{"String", "b"}}}, {"behavior", "Isolated"}},
                                  {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  write("tokenizer.json", tokenizer.dump());
  const auto loaded = load_tokenizer(dir_.string());
  // "b" is isolated, so the merges "a b" and "ab c" cannot apply across it.
  EXPECT_EQ(loaded->encode("abc"), (std::vector<TokenId>{'a', 'b', 'c'}));
  EXPECT_EQ(loaded->encode("ac"), (std::vector<TokenId>{'a', 'c'}));
}

TEST_F(LoaderTest, RejectsWrongFieldTypes) {
  struct Case {
    std::function<void(json&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](json& t) { t["added_tokens"][0]["special"] = "yes"; }, "added_tokens[0].special"},
      {[](json& t) { t["added_tokens"][1]["lstrip"] = 1; }, "added_tokens[1].lstrip"},
      {[](json& t) { t["model"]["ignore_merges"] = "no"; }, "model.ignore_merges"},
      {[](json& t) { t["model"]["byte_fallback"] = 0; }, "model.byte_fallback"},
      {[](json& t) { t["model"]["type"] = 1; }, "model.type"},
      {[](json& t) { t["pre_tokenizer"]["type"] = 5; }, "pre_tokenizer.type"},
      {[](json& t) { t["pre_tokenizer"]["use_regex"] = "true"; }, "pre_tokenizer.use_regex"},
      {[](json& t) { t["decoder"] = "ByteLevel"; }, "decoder"},
      {[](json& t) { t["post_processor"] = 3; }, "post_processor"},
      {[](json& t) { t["normalizer"] = "NFC"; }, "normalizer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    expect_json_error(c.edit, {c.field});
  }
}

TEST_F(LoaderTest, RejectsNonObjectTokenizerConfig) {
  write("tokenizer.json", small_tokenizer_json().dump());
  write("tokenizer_config.json", R"("<|begin_of_text|>")");
  expect_error(dir_.string(), {"tokenizer_config.json", "expected a JSON object", "string"});
}

TEST_F(LoaderTest, RegexMatchLimitNamesPattern) {
  json tokenizer = small_tokenizer_json();
  tokenizer["pre_tokenizer"] = {{"type", "Sequence"},
                                {"pretokenizers",
                                 {{{"type", "Split"}, {"pattern", {{"Regex", "(a+)+$"}}}, {"behavior", "Isolated"}},
                                  {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  const fs::path path = write("tokenizer.json", tokenizer.dump());
  const auto loaded = load_tokenizer(path.string());
  try {
    (void)loaded->encode(std::string(40, 'a') + "b");
    ADD_FAILURE() << "catastrophic backtracking did not hit PCRE2's match limit";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("pre_tokenizer.pretokenizers[0].pattern"), std::string::npos) << message;
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find("match limit"), std::string::npos) << message;
  }
}

TEST_F(LoaderTest, ManyAddedTokensMatchLongestFirst) {
  // 50,000 added tokens share the first byte '<'. Loading took O(n^2 log n)
  // time when every add() sorted the candidates of a byte (30,000 took 3.4 s).
  json tokenizer = small_tokenizer_json();
  const int n_added = 50000;
  for (int i = 0; i < n_added; ++i) {
    tokenizer["added_tokens"].push_back({{"id", 260 + i}, {"content", "<t" + std::to_string(i) + ">"}});
  }
  // Longer contents added after shorter ones with the same prefix must still win.
  tokenizer["added_tokens"].push_back({{"id", 260 + n_added}, {"content", "<t1"}});
  tokenizer["added_tokens"].push_back({{"id", 261 + n_added}, {"content", "<t1>>"}});
  write("tokenizer.json", tokenizer.dump());
  const auto loaded = load_tokenizer(dir_.string());
  EXPECT_EQ(loaded->vocab_size(), 262 + n_added);
  EXPECT_EQ(loaded->encode("<t1>><t1>x<t49999><t1"),
            (std::vector<TokenId>{261 + n_added, 261, 'x', 260 + 49999, 260 + n_added}));
}

TEST_F(LoaderTest, RejectsMissingPaths) {
  expect_error((dir_ / "absent.json").string(), {"absent.json", "not found"});
  expect_error(dir_.string(), {dir_.string(), "neither tokenizer.json nor vocab.json + merges.txt"});
}

TEST_F(LoaderTest, Gpt2FilesLoadAndValidate) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  vocab["\u0120t"] = 256;  // " t"
  vocab["<|endoftext|>"] = 257;
  write("vocab.json", vocab.dump());
  write("merges.txt", "#version: 0.2\n\u0120 t\n");
  const auto tokenizer = load_tokenizer(dir_.string());
  EXPECT_EQ(tokenizer->encode(" t<|endoftext|>", true), (std::vector<TokenId>{256, 257}));
  EXPECT_EQ(tokenizer->eos_id(), 257);

  write("merges.txt", "#version: 0.2\n\u0120 t\nbad-line\n");
  expect_error(dir_.string(), {"merges.txt line 3", "bad-line"});
  write("merges.txt", "#version: 0.2\n\u0120 q\n");
  expect_error(dir_.string(), {"merges.txt line 2", "produces"});
  write("merges.txt", "");
  write("vocab.json", "[1, 2]");
  expect_error(dir_.string(), {"vocab.json", "expected a JSON object"});
}

}  // namespace
}  // namespace ropepp
