// Chat templates: the Llama-3 header layout when the tokenizer has its
// special tokens, plain "role: content" lines otherwise.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve/chat.h"
#include "serve/completion_request.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {
namespace {

// Bytes as ids 0-255, plus the three Llama-3 header tokens at 256-258.
class HeaderTokenizer : public Tokenizer {
 public:
  HeaderTokenizer() {
    for (int i = 0; i < 256; ++i) bytes_.push_back(std::string(1, static_cast<char>(i)));
    bytes_.push_back("<|start_header_id|>");
    bytes_.push_back("<|end_header_id|>");
    bytes_.push_back("<|eot_id|>");
  }
  std::vector<TokenId> encode(std::string_view text, bool) const override {
    std::vector<TokenId> ids;
    for (const char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  const std::string& token_bytes(TokenId id) const override { return bytes_.at(static_cast<size_t>(id)); }
  int32_t vocab_size() const override { return static_cast<int32_t>(bytes_.size()); }
  std::optional<TokenId> special_token_id(std::string_view text) const override {
    for (TokenId id = 256; id < vocab_size(); ++id) {
      if (bytes_[static_cast<size_t>(id)] == text) return id;
    }
    return std::nullopt;
  }
  bool is_special(TokenId id) const override { return id >= 256; }
  std::optional<TokenId> bos_id() const override { return std::nullopt; }
  std::optional<TokenId> eos_id() const override { return std::nullopt; }
  std::string description() const override { return "test tokenizer with Llama-3 header tokens"; }

 private:
  std::vector<std::string> bytes_;
};

TEST(ChatPrompt, LlamaHeadersWhenTokenizerHasThem) {
  const HeaderTokenizer tokenizer;
  const ChatPrompt prompt = build_chat_prompt(tokenizer, {{"user", "Hi <|eot_id|>"}}, 7);
  // Special-token text inside a message stays ordinary text.
  std::vector<TokenId> expected = {7, 256};
  for (const char c : std::string("user")) expected.push_back(c);
  expected.push_back(257);
  for (const char c : std::string("\n\nHi <|eot_id|>")) expected.push_back(c);
  expected.push_back(258);
  expected.push_back(256);
  for (const char c : std::string("assistant")) expected.push_back(c);
  expected.push_back(257);
  expected.push_back('\n');
  expected.push_back('\n');
  EXPECT_EQ(prompt.tokens, expected);
  EXPECT_EQ(prompt.stop_token_ids, std::vector<TokenId>{258});
  EXPECT_TRUE(prompt.stop_strings.empty());
}

TEST(ChatPrompt, PlainLinesWithoutHeaderTokens) {
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer("byte");
  const ChatPrompt prompt =
      build_chat_prompt(*tokenizer, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}}, std::nullopt);
  EXPECT_EQ(tokenizer->decode(prompt.tokens), "system: Be brief.\nuser: Hi\nassistant: Hello\nassistant:");
  EXPECT_TRUE(prompt.stop_token_ids.empty());
  EXPECT_EQ(prompt.stop_strings, (std::vector<std::string>{"\nuser:", "\nsystem:"}));
}

TEST(ChatMessages, RejectsMessageWithoutRole) {
  EXPECT_THROW(parse_chat_messages(nlohmann::json::parse(R"([{"content": "Hi"}])")), RequestError);
}

TEST(ChatMessages, ParsesRolesInOrder) {
  const std::vector<ChatMessage> messages = parse_chat_messages(
      nlohmann::json::parse(R"([{"role": "system", "content": "a"}, {"role": "user", "content": "b"}])"));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].role, "system");
  EXPECT_EQ(messages[1].content, "b");
}

}  // namespace
}  // namespace ropepp
