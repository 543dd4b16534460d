#include "tokenizer/byte_tokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace ropepp {

ByteTokenizer::ByteTokenizer() {
  token_bytes_.reserve(kVocabSize);
  for (int b = 0; b < 256; ++b) token_bytes_.emplace_back(1, static_cast<char>(b));
  token_bytes_.emplace_back("<|begin_of_text|>");
  token_bytes_.emplace_back("<|end_of_text|>");
  token_bytes_.emplace_back("<|pad|>");
  for (TokenId id = 256; id < kVocabSize; ++id) specials_.add(AddedToken{token_bytes_[id], id});
}

std::vector<TokenId> ByteTokenizer::encode(std::string_view text, bool allow_special) const {
  const size_t invalid = find_invalid_utf8(text);
  ROPEPP_CHECK(invalid == std::string_view::npos,
               "tokenizer: the text to encode is not valid UTF-8 (invalid byte 0x{:02X} at offset {} of {}); "
               "repair it first, e.g. with replace_invalid_utf8()",
               static_cast<uint8_t>(text[invalid]), invalid, text.size());
  std::vector<TokenId> ids;
  ids.reserve(text.size());
  const auto append_bytes = [&](std::string_view segment) {
    for (char c : segment) ids.push_back(static_cast<uint8_t>(c));
  };
  if (!allow_special) {
    append_bytes(text);
    return ids;
  }
  specials_.split(text, true, append_bytes, [&](TokenId id) { ids.push_back(id); });
  return ids;
}

const std::string& ByteTokenizer::token_bytes(TokenId id) const {
  ROPEPP_CHECK(id >= 0 && id < kVocabSize, "tokenizer: token id {} is out of range [0, {}) for the byte tokenizer",
               id, kVocabSize);
  return token_bytes_[id];
}

std::optional<TokenId> ByteTokenizer::special_token_id(std::string_view text) const {
  for (TokenId id = 256; id < kVocabSize; ++id) {
    if (token_bytes_[id] == text) return id;
  }
  return std::nullopt;
}

}  // namespace ropepp
