#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

#include "tokenizer/byte_level.h"

namespace ropepp {
namespace {

TEST(Utf8, FindsFirstInvalidSequence) {
  struct Case {
    std::string text;
    size_t expected;
  };
  const Case cases[] = {
      {"", std::string::npos},
      {"plain ascii", std::string::npos},
      {"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF", std::string::npos},  // é € 😀 U+10FFFF
      {"a\x80", 1},                      // lone continuation byte
      {"ab\xC0\xAF", 2},                 // overlong '/'
      {"\xC1\xBF", 0},                   // overlong
      {"xy\xE0\x80\xAF", 2},             // overlong 3-byte form
      {"\xED\xA0\x80", 0},               // surrogate U+D800
      {"\xF0\x8F\xBF\xBF", 0},           // overlong 4-byte form
      {"\xF4\x90\x80\x80", 0},           // above U+10FFFF
      {"\xF5\x80\x80\x80", 0},           // lead byte never valid
      {"ok\xE2\x82", 2},                 // truncated at the end
      {"ok\xE2\x82x", 2},                // truncated in the middle
      {"\xFF", 0},
  };
  for (const Case& c : cases) EXPECT_EQ(find_invalid_utf8(c.text), c.expected) << testing::PrintToString(c.text);
}

TEST(Utf8, ReplacesMaximalSubparts) {
  // The example of the Unicode Standard (chapter 3, "U+FFFD Substitution of
  // Maximal Subparts"): F1 80 80, E1 80 and C2 are truncated sequences, each
  // replaced once; 80 and BF are replaced one by one.
  EXPECT_EQ(replace_invalid_utf8("a\xF1\x80\x80\xE1\x80\xC2" "b\x80" "c\x80\xBF" "d"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(replace_invalid_utf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate: E0..9F only after ED
  EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98"), "\uFFFD");
  EXPECT_EQ(replace_invalid_utf8("valid \xE2\x82\xAC"), "valid \xE2\x82\xAC");
  EXPECT_EQ(replace_invalid_utf8(""), "");
}

TEST(Utf8, CompletePrefixHoldsBackPartialCharacter) {
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("abc\xE2\x82"), 3u);
  EXPECT_EQ(complete_utf8_prefix("abc\xE2\x82\xAC"), 6u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F"), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xC3"), 0u);
  // Bytes that can never complete a character are not held back.
  EXPECT_EQ(complete_utf8_prefix("\xE0\x80"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\x80"), 2u);
  EXPECT_EQ(complete_utf8_prefix("\xFF"), 1u);
  EXPECT_EQ(complete_utf8_prefix("\xED\xA0"), 2u);
}

TEST(ByteLevel, MapsEveryByteAndBack) {
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    const std::string text = bytes_to_byte_level(byte);
    EXPECT_EQ(find_invalid_utf8(text), std::string::npos);
    EXPECT_EQ(byte_level_to_bytes(text), byte) << "byte " << b;
  }
  EXPECT_EQ(bytes_to_byte_level(" "), "\u0120");   // Ġ
  EXPECT_EQ(bytes_to_byte_level("\n"), "\u010A");  // Ċ
  EXPECT_EQ(bytes_to_byte_level("A~"), "A~");
  EXPECT_EQ(bytes_to_byte_level("\xAD"), "\u0143");  // the last unprintable byte gets the last code point
  EXPECT_EQ(bytes_to_byte_level(std::string(1, '\0')), "\u0100");
}

TEST(ByteLevel, RejectsCharactersOutsideAlphabet) {
  EXPECT_EQ(byte_level_to_bytes(" "), std::nullopt);        // a raw space is not in the alphabet
  EXPECT_EQ(byte_level_to_bytes("\u0144"), std::nullopt);   // one past the alphabet
  EXPECT_EQ(byte_level_to_bytes("日"), std::nullopt);
  EXPECT_EQ(byte_level_to_bytes("\xC3"), std::nullopt);     // invalid UTF-8
  EXPECT_EQ(byte_level_to_bytes(""), std::string());
}

}  // namespace
}  // namespace ropepp
