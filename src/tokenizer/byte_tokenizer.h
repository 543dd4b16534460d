// Byte tokenizer for small models trained from scratch: no vocabulary file,
// any UTF-8 text encodes, one id per byte.
//
// Ids: 0-255 are the bytes 0x00-0xFF, then three special tokens:
//   256 <|begin_of_text|>   (bos_id)
//   257 <|end_of_text|>     (eos_id)
//   258 <|pad|>
// vocab_size() is 259; a model may round its embedding up (e.g. to 320) and
// leave the extra rows unused.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr TokenId kBeginOfText = 256;
  static constexpr TokenId kEndOfText = 257;
  static constexpr TokenId kPad = 258;
  static constexpr int32_t kVocabSize = 259;

  ByteTokenizer();

  std::vector<TokenId> encode(std::string_view text, bool allow_special = false) const override;
  const std::string& token_bytes(TokenId id) const override;
  int32_t vocab_size() const override { return kVocabSize; }
  std::optional<TokenId> special_token_id(std::string_view text) const override;
  bool is_special(TokenId id) const override { return id >= 256 && id < kVocabSize; }
  std::optional<TokenId> bos_id() const override { return kBeginOfText; }
  std::optional<TokenId> eos_id() const override { return kEndOfText; }
  std::string description() const override { return "byte tokenizer, 259 tokens (3 special)"; }

 private:
  std::vector<std::string> token_bytes_;
  AddedTokenMatcher specials_;
};

}  // namespace ropepp
