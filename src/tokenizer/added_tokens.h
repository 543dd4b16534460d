// Added tokens ("added_tokens" of tokenizer.json): strings that are matched in
// the raw text before pre-tokenization and map to one id each. Special ones
// (<|begin_of_text|>, ...) are matched only when the caller allows special
// tokens; non-special ones always.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ropepp {

struct AddedToken {
  std::string content;
  TokenId id = 0;
  bool special = true;
  bool lstrip = false;  // the match also takes the whitespace before it
  bool rstrip = false;  // the match also takes the whitespace after it
};

class AddedTokenMatcher {
 public:
  void add(AddedToken token);
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Splits `text` into ordinary text (passed to on_text, never empty) and
  // added tokens (passed to on_token), in order. At each position the longest
  // token wins, as with Hugging Face's leftmost-longest matching.
  void split(std::string_view text, bool allow_special, const std::function<void(std::string_view)>& on_text,
             const std::function<void(TokenId)>& on_token) const;

 private:
  std::vector<AddedToken> tokens_;
  // Indices into tokens_ by first byte, longest content first.
  std::array<std::vector<int>, 256> by_first_byte_;
};

}  // namespace ropepp
