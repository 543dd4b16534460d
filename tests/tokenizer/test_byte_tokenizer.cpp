#include "tokenizer/byte_tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace ropepp {
namespace {

TEST(ByteTokenizer, EncodesBytesAndSpecials) {
  const auto tokenizer = load_tokenizer("byte");
  EXPECT_EQ(tokenizer->vocab_size(), 259);
  EXPECT_EQ(tokenizer->encode("Hi\xC3\xA9"), (std::vector<TokenId>{'H', 'i', 0xC3, 0xA9}));
  EXPECT_EQ(tokenizer->encode(""), std::vector<TokenId>{});

  const std::string text = "<|begin_of_text|>a<|pad|><|end_of_text|>";
  EXPECT_EQ(tokenizer->encode(text, true), (std::vector<TokenId>{256, 'a', 258, 257}));
  EXPECT_EQ(tokenizer->encode(text, false).size(), text.size());
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, true)), text);
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false)), text);
}

TEST(ByteTokenizer, SpecialIds) {
  const auto tokenizer = load_tokenizer("byte");
  EXPECT_EQ(tokenizer->bos_id(), ByteTokenizer::kBeginOfText);
  EXPECT_EQ(tokenizer->eos_id(), ByteTokenizer::kEndOfText);
  EXPECT_EQ(tokenizer->special_token_id("<|pad|>"), ByteTokenizer::kPad);
  EXPECT_EQ(tokenizer->special_token_id("a"), std::nullopt);
  EXPECT_TRUE(tokenizer->is_special(257));
  EXPECT_FALSE(tokenizer->is_special(255));
  EXPECT_FALSE(tokenizer->is_special(259));
  EXPECT_THROW((void)tokenizer->token_bytes(259), Error);
  EXPECT_THROW((void)tokenizer->token_bytes(-1), Error);
}

TEST(ByteTokenizer, RejectsInvalidUtf8) {
  const auto tokenizer = load_tokenizer("byte");
  EXPECT_THROW((void)tokenizer->encode("abc\xFF"), Error);
}

TEST(StreamDecoder, HoldsBackPartialCharacters) {
  const auto tokenizer = load_tokenizer("byte");
  const std::string text = "h\xC3\xA9llo \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC <|end_of_text|>";
  StreamDecoder decoder(*tokenizer);
  std::string streamed;
  std::vector<std::string> chunks;
  for (TokenId id : tokenizer->encode(text, true)) {
    chunks.push_back(decoder.push(id));
    EXPECT_EQ(find_invalid_utf8(chunks.back()), std::string::npos) << "chunk " << chunks.size() - 1;
    streamed += chunks.back();
  }
  EXPECT_EQ(decoder.finish(), "");
  EXPECT_EQ(streamed, text);
  // "h", then the two bytes of é: nothing, then the whole character.
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks[1], "");
  EXPECT_EQ(chunks[2], "\xC3\xA9");
}

TEST(StreamDecoder, PassesInvalidBytesThrough) {
  const auto tokenizer = load_tokenizer("byte");
  StreamDecoder decoder(*tokenizer);
  EXPECT_EQ(decoder.push(0xE2), "");
  EXPECT_EQ(decoder.push('('), "\xE2(");  // E2 can no longer complete
  EXPECT_EQ(decoder.push(0x80), "\x80");   // a lone continuation byte is never held
  EXPECT_EQ(decoder.push(0xF0), "");
  EXPECT_EQ(decoder.push(0x9F), "");
  EXPECT_EQ(decoder.finish(), "\xF0\x9F");  // truncated at the end of the stream
  EXPECT_EQ(decoder.finish(), "");
}

}  // namespace
}  // namespace ropepp
