// ropepp's Llama-3 and GPT-2 tokenizers against Hugging Face's Rust tokenizers
// (npm @anush008/tokenizers 0.6.0): hard strings, random strings and a whole
// book must give identical ids, and decoding must give the text back.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <thread>
#include <unistd.h>

#include "core/error.h"
#include "reference_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace ropepp {
namespace {

using testing::tokenizer_data_dir;

std::vector<std::string> hard_strings() {
  return {
      "",
      " ",
      "a",
      "Hello, world!",
      // Contractions in any case. Llama-3's pattern matches them
      // case-insensitively, GPT-2's only in lower case.
      "I'M here, we'LL see, they'Re, it'S, you'VE, he'D, don'T",
      "I'm I'M i'm 's 'S 'll 'LL 'Ll ' s",
      "rock'n'roll ''''' '",
      // Digits: Llama-3 splits them in groups of up to three.
      "1234567890123456789012345678901234567890",
      "3.14159 1,000,000 -42 +7 0x1F 1e-9",
      "12345abc6789 x1y22z333",
      // Runs of spaces, newlines and tabs, and trailing spaces.
      "a  b   c    d     e",
      "trailing spaces   ",
      "   leading spaces",
      "\n\n\nthree newlines\n\n",
      "\t\ttabs\t and\t\t\tmore\t",
      "mixed \n \t \r\n \r \u000b \f whitespace",
      "line one\r\nline two\r\n\r\n",
      "                                                                  end",
      // Llama-3 vocabulary tokens that its merges do not build: only
      // ignore_merges encodes each of these words as one token.
      "ilmektedir jeho zdravot mevcut Arthropoda",
      // Mixed scripts.
      "日本語のテキストと English と 中文混合。",
      "مرحبا بالعالم، هذا نص عربي",
      "नमस्ते दुनिया, यह हिन्दी है।",
      "Ελληνικά κείμενα και Кириллица тоже",
      "한국어 텍스트 ภาษาไทย",
      // Emoji, including ZWJ sequences, skin tones and flags.
      "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵",
      "❤️‍🔥 🧑🏿‍💻 a😀b",
      // Special-token text.
      "<|begin_of_text|>Hello<|end_of_text|>",
      "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "<|reserved_special_token_0|><|reserved_special_token_250|>",
      "<|endoftext|>GPT-2 special<|endoftext|>",
      "<|begin_of_text|<|end_of_text|>> <| begin_of_text |>",
      // Punctuation, symbols, code.
      "int main() { return a->b[i] <= c ? x : y; } // ok?!",
      "\"quoted\" «guillemets» — dashes – ... … ¿¡",
      "path/to/file.txt C:\\Windows\\System32 https://example.com/?q=1&r=2#frag",
      // Other edge characters: combining marks, replacement character, NUL
      // and control characters, non-characters, the last code point.
      "e\u0301 a\u0308 n\u0303",
      "\uFFFD\uFFFD replacement",
      std::string("nul\0inside", 10),
      "\x01\x02\x1b[0m\x7f",
      "\uFEFFbom \u200b zero width \u2060",
      "\U0010FFFF \U0001F600 \uFDD0",
      // Characters new in Unicode 15 (Kawi and Nag Mundari letters and
      // digits, U+0CF3, an emoji) between ASCII letters: PCRE2 10.42 has
      // Unicode 14 tables, so these pin the classification to the reference's.
      "a\U00011F04b x\U0001E4D0y 1\U0001E4F02 a\u0CF3b q\U0001F979z",
  };
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Random strings over pieces that stress the pre-tokenizer and the merges.
std::vector<std::string> random_strings(int count, uint32_t seed) {
  static const std::vector<std::string> pieces = {
      "a", "b", "e", "th", "the", "The", "ing", "tion", "Q", "Z", "x", " ", " ", " ", "  ", "\n", "\n\n", "\t",
      "\r\n", "'", "'s", "'S", "'ll", "'LL", "'m", "0", "1", "12", "999", ".", ",", "!", "?", "-", "_", "(", ")",
      "\"", "<|", "|>", "é", "ß", "ñ", "日", "本", "中", "ا", "ل", "न", "म", "्", "😀", "👍🏽", "\u200d", "€", "©",
      "\u00a0", "\u3000", "<|begin_of_text|>", "<|endoftext|>", "…", "—"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> length(0, 40);
  std::vector<std::string> strings;
  for (int i = 0; i < count; ++i) {
    std::string text;
    for (int n = length(rng); n > 0; --n) text += pieces[pick(rng)];
    strings.push_back(std::move(text));
  }
  return strings;
}

struct ReferenceCase {
  std::string name;
  std::string ropepp_path;
  nlohmann::json reference_tokenizer;
};

void PrintTo(const ReferenceCase& reference, std::ostream* out) { *out << reference.name; }

// The string sets compared with the reference, all run in one Node.js call
// per tokenizer because loading Llama-3 there takes seconds.
enum StringSet { kHardWithSpecial, kHardWithoutSpecial, kRandom, kLongRuns, kRepaired, kNumSets };

const std::string kInvalidUtf8 = "ok \xC3\x28 bad \xED\xA0\x80 surrogate \xF0\x9F\x98 cut";

std::vector<std::string> long_runs() {
  // Long pre-tokens take the heap merge path.
  return {std::string(5000, ' ') + "x", std::string(3000, '7'), std::string(4000, 'a'), std::string(2000, '\n') + "b",
          "x" + std::string(1000, '!') + "y"};
}

struct StringSetSpec {
  std::vector<std::string> strings;
  bool allow_special;
};

std::vector<StringSetSpec> string_sets() {
  std::vector<StringSetSpec> sets(kNumSets);
  sets[kHardWithSpecial] = {hard_strings(), true};
  sets[kHardWithoutSpecial] = {hard_strings(), false};
  sets[kRandom] = {random_strings(401, 1234), true};
  sets[kLongRuns] = {long_runs(), false};
  sets[kRepaired] = {{replace_invalid_utf8(kInvalidUtf8)}, false};
  return sets;
}

// Everything one tokenizer needs from the reference, computed on first use.
struct ReferenceData {
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<StringSetSpec> sets;
  std::vector<std::vector<std::vector<TokenId>>> expected;  // [set][string] -> ids
  std::vector<TokenId> book_ids;
};

const ReferenceData& reference_data(const ReferenceCase& reference) {
  static std::map<std::string, ReferenceData> cache;
  auto found = cache.find(reference.name);
  if (found != cache.end()) return found->second;

  ReferenceData data;
  data.tokenizer = load_tokenizer(reference.ropepp_path);
  data.sets = string_sets();
  nlohmann::json request = {{"tokenizer", reference.reference_tokenizer},
                            {"text_file", (tokenizer_data_dir() / "text/moby-dick.txt").string()},
                            {"sets", nlohmann::json::array()}};
  for (const StringSetSpec& set : data.sets) {
    request["sets"].push_back({{"strings", set.strings}, {"allow_special", set.allow_special}});
  }
  const nlohmann::json output = testing::run_reference(request);
  data.expected = output.at("sets").get<std::vector<std::vector<std::vector<TokenId>>>>();
  data.book_ids = output.at("text_file_ids").get<std::vector<TokenId>>();
  return cache.emplace(reference.name, std::move(data)).first->second;
}

class ReferenceTest : public ::testing::TestWithParam<ReferenceCase> {
 protected:
  void SetUp() override {
    ROPEPP_REQUIRE_REFERENCE();
    data_ = &reference_data(GetParam());
    tokenizer_ = data_->tokenizer.get();
  }

  // Compares ropepp's ids with the reference ids of every string of a set.
  void expect_same_ids(StringSet set_index) {
    const StringSetSpec& set = data_->sets[set_index];
    const auto& expected = data_->expected[set_index];
    ASSERT_EQ(expected.size(), set.strings.size());
    for (size_t i = 0; i < set.strings.size(); ++i) {
      EXPECT_EQ(tokenizer_->encode(set.strings[i], set.allow_special), expected[i])
          << "string " << i << ": " << nlohmann::json(set.strings[i]).dump() << ", allow_special "
          << set.allow_special;
    }
  }

  const ReferenceData* data_ = nullptr;
  const Tokenizer* tokenizer_ = nullptr;
};

TEST_P(ReferenceTest, HardStringsWithSpecialTokens) { expect_same_ids(kHardWithSpecial); }

TEST_P(ReferenceTest, HardStringsWithoutSpecialTokens) { expect_same_ids(kHardWithoutSpecial); }

TEST_P(ReferenceTest, RandomStrings) { expect_same_ids(kRandom); }

TEST_P(ReferenceTest, LongRunsOfOneClass) { expect_same_ids(kLongRuns); }

TEST_P(ReferenceTest, InvalidUtf8IsRejectedOrReplaced) {
  try {
    (void)tokenizer_->encode(kInvalidUtf8, false);
    FAIL() << "encode accepted invalid UTF-8";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("offset 3"), std::string::npos) << error.what();
  }
  // After repair, the ids are those of the text with U+FFFD in place.
  EXPECT_EQ(replace_invalid_utf8(kInvalidUtf8), "ok \uFFFD( bad \uFFFD\uFFFD\uFFFD surrogate \uFFFD cut");
  expect_same_ids(kRepaired);
}

TEST_P(ReferenceTest, DecodeRoundTripsHardStrings) {
  for (bool allow_special : {false, true}) {
    for (const std::string& text : hard_strings()) {
      EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, allow_special)), text)
          << nlohmann::json(text).dump() << ", allow_special " << allow_special;
    }
  }
}

TEST_P(ReferenceTest, StreamingDecodeNeverSplitsCharacters) {
  for (const std::string& text : hard_strings()) {
    StreamDecoder decoder(*tokenizer_);
    std::string streamed;
    for (TokenId id : tokenizer_->encode(text, true)) {
      const std::string chunk = decoder.push(id);
      EXPECT_EQ(find_invalid_utf8(chunk), std::string::npos) << "partial character in a chunk of "
                                                             << nlohmann::json(text).dump();
      streamed += chunk;
    }
    const std::string rest = decoder.finish();
    EXPECT_EQ(rest, "") << "bytes held back at the end of valid text " << nlohmann::json(text).dump();
    EXPECT_EQ(streamed + rest, text);
  }
}

TEST_P(ReferenceTest, ConcurrentEncodeMatchesReference) {
  // The pre-token cache is shared by all threads that use one tokenizer.
  const StringSetSpec& set = data_->sets[kRandom];
  const auto& expected = data_->expected[kRandom];
  std::vector<std::vector<std::vector<TokenId>>> results(4, std::vector<std::vector<TokenId>>(set.strings.size()));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the strings in its own order (401 is prime, so
      // every stride is a permutation), so cache fills race.
      for (size_t k = 0; k < set.strings.size(); ++k) {
        const size_t i = (k * (2 * t + 1) + t * 97) % set.strings.size();
        results[t][i] = tokenizer_->encode(set.strings[i], set.allow_special);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t t = 0; t < results.size(); ++t) EXPECT_EQ(results[t], expected) << "thread " << t;
}

TEST_P(ReferenceTest, WholeBookMatches) {
  const std::string text = read_file(tokenizer_data_dir() / "text/moby-dick.txt");
  ASSERT_GT(text.size(), 1000000u);
  const std::vector<TokenId>& expected = data_->book_ids;
  const std::vector<TokenId> ids = tokenizer_->encode(text, false);
  ASSERT_EQ(ids.size(), expected.size());
  size_t first_difference = 0;
  while (first_difference < ids.size() && ids[first_difference] == expected[first_difference]) ++first_difference;
  EXPECT_EQ(first_difference, ids.size()) << "first different id at token " << first_difference;
  EXPECT_EQ(tokenizer_->decode(ids), text);
}

std::vector<ReferenceCase> reference_cases() {
  const std::string dir = tokenizer_data_dir().string();
  return {
      {"Llama3", dir + "/llama3/tokenizer.json", {{"json", dir + "/llama3/tokenizer.json"}}},
      {"Gpt2Files", dir + "/gpt2", {{"vocab", dir + "/gpt2/vocab.json"}, {"merges", dir + "/gpt2/merges.txt"}}},
  };
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, ReferenceTest, ::testing::ValuesIn(reference_cases()),
                         [](const auto& info) { return info.param.name; });

class ReferenceFacts : public ::testing::Test {
 protected:
  void SetUp() override { ROPEPP_REQUIRE_REFERENCE(); }
};

TEST_F(ReferenceFacts, Llama3SpecialIds) {
  const auto tokenizer = load_tokenizer((tokenizer_data_dir() / "llama3").string());
  EXPECT_EQ(tokenizer->vocab_size(), 128256);
  EXPECT_EQ(tokenizer->bos_id(), 128000);
  EXPECT_EQ(tokenizer->eos_id(), 128001);
  EXPECT_EQ(tokenizer->special_token_id("<|eot_id|>"), 128009);
  EXPECT_EQ(tokenizer->special_token_id("<|reserved_special_token_250|>"), 128255);
  EXPECT_EQ(tokenizer->special_token_id("hello"), std::nullopt);
  EXPECT_TRUE(tokenizer->is_special(128000));
  EXPECT_FALSE(tokenizer->is_special(9906));
  EXPECT_EQ(tokenizer->token_bytes(128001), "<|end_of_text|>");
  EXPECT_EQ(tokenizer->token_bytes(220), " ");
  EXPECT_THROW((void)tokenizer->token_bytes(128256), Error);
  EXPECT_THROW((void)tokenizer->token_bytes(-1), Error);
}

TEST_F(ReferenceFacts, Gpt2SpecialIds) {
  const auto tokenizer = load_tokenizer((tokenizer_data_dir() / "gpt2").string());
  EXPECT_EQ(tokenizer->vocab_size(), 50257);
  EXPECT_EQ(tokenizer->bos_id(), 50256);
  EXPECT_EQ(tokenizer->eos_id(), 50256);
  EXPECT_EQ(tokenizer->special_token_id("<|endoftext|>"), 50256);
}

TEST_F(ReferenceFacts, Gpt2TokenizerJsonMatchesRust) {
  // The Rust library saves GPT-2 as tokenizer.json with merges as
  // ["left", "right"] arrays, the newer form beside "left right" strings.
  const std::string dir = tokenizer_data_dir().string();
  const std::filesystem::path saved =
      std::filesystem::temp_directory_path() / ("ropepp_gpt2_" + std::to_string(::getpid()) + ".json");
  const nlohmann::json files = {{"vocab", dir + "/gpt2/vocab.json"}, {"merges", dir + "/gpt2/merges.txt"}};
  const std::vector<std::string> strings = hard_strings();
  const nlohmann::json request = {{"tokenizer", files},
                                  {"sets", {{{"strings", strings}, {"allow_special", true}}}},
                                  {"save_json", saved.string()}};
  const nlohmann::json expected = testing::run_reference(request)["sets"][0];
  const auto tokenizer = load_tokenizer(saved.string());
  std::filesystem::remove(saved);
  for (size_t i = 0; i < strings.size(); ++i) {
    EXPECT_EQ(nlohmann::json(tokenizer->encode(strings[i], true)), expected[i]) << nlohmann::json(strings[i]).dump();
  }
}

TEST_F(ReferenceFacts, Gpt2PrefixSpaceMatchesRust) {
  // ByteLevel with add_prefix_space puts a space before every stretch of
  // text between added tokens that does not start with one.
  const std::string dir = tokenizer_data_dir().string();
  const std::filesystem::path saved = testing::golden_cache_dir() / "gpt2-saved.json";
  const nlohmann::json files = {{"vocab", dir + "/gpt2/vocab.json"}, {"merges", dir + "/gpt2/merges.txt"}};
  (void)testing::run_reference({{"tokenizer", files}, {"save_json", saved.string()}});

  std::ifstream in(saved);
  nlohmann::json tokenizer_json = nlohmann::json::parse(in);
  tokenizer_json["pre_tokenizer"]["add_prefix_space"] = true;
  const std::filesystem::path edited = testing::golden_cache_dir() / "gpt2-add-prefix-space.json";
  std::ofstream(edited) << tokenizer_json.dump();

  std::vector<std::string> strings = hard_strings();
  strings.insert(strings.end(), {"a<|endoftext|>b", "<|endoftext|> b", "\nx", "hello"});
  const auto tokenizer = load_tokenizer(edited.string());
  const nlohmann::json request = {{"tokenizer", {{"json", edited.string()}}},
                                  {"sets",
                                   {{{"strings", strings}, {"allow_special", true}},
                                    {{"strings", strings}, {"allow_special", false}}}}};
  const nlohmann::json expected = testing::run_reference(request)["sets"];
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string quoted = nlohmann::json(strings[i]).dump();
    EXPECT_EQ(nlohmann::json(tokenizer->encode(strings[i], true)), expected[0][i]) << quoted << " with specials";
    EXPECT_EQ(nlohmann::json(tokenizer->encode(strings[i], false)), expected[1][i]) << quoted << " without";
  }
}

}  // namespace
}  // namespace ropepp
