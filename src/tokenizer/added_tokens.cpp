#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstdint>

namespace ropepp {
namespace {

// Returns the length of the Unicode White_Space character that ends just
// before `end`, or 0 when there is none.
size_t whitespace_before(std::string_view text, size_t end) {
  if (end == 0) return 0;
  const uint8_t last = static_cast<uint8_t>(text[end - 1]);
  if (last == ' ' || (last >= '\t' && last <= '\r')) return 1;
  static constexpr std::string_view kMultiByte[] = {
      "\u0085", "\u00A0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006",
      "\u2007", "\u2008", "\u2009", "\u200A", "\u2028", "\u2029", "\u202F", "\u205F", "\u3000"};
  for (std::string_view space : kMultiByte) {
    if (end >= space.size() && text.substr(end - space.size(), space.size()) == space) return space.size();
  }
  return 0;
}

// Returns the length of the Unicode White_Space character at `pos`, or 0.
size_t whitespace_at(std::string_view text, size_t pos) {
  for (size_t length = 1; length <= 3 && pos + length <= text.size(); ++length) {
    if (whitespace_before(text, pos + length) == length) return length;
  }
  return 0;
}

}  // namespace

void AddedTokenMatcher::add(AddedToken token) {
  if (token.content.empty()) return;
  const auto first = static_cast<uint8_t>(token.content[0]);
  tokens_.push_back(std::move(token));
  // Inserted after every candidate at least as long, which keeps the list
  // longest first and, among equal lengths, in the order of addition. Sorting
  // the whole list on every call made loading n added tokens O(n^2 log n).
  // NOTE: split() still tries the candidates of a byte one by one, so tens of
  // thousands of added tokens with one first byte make encoding slow.
  auto& candidates = by_first_byte_[first];
  const size_t length = tokens_.back().content.size();
  const auto position = std::upper_bound(candidates.begin(), candidates.end(), length,
                                         [&](size_t size, int index) { return size > tokens_[index].content.size(); });
  candidates.insert(position, static_cast<int>(tokens_.size() - 1));
}

void AddedTokenMatcher::split(std::string_view text, bool allow_special,
                              const std::function<void(std::string_view)>& on_text,
                              const std::function<void(TokenId)>& on_token) const {
  size_t text_start = 0;  // start of ordinary text not yet passed on
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* match = nullptr;
    for (int index : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      const AddedToken& token = tokens_[index];
      if (token.special && !allow_special) continue;
      if (text.substr(pos, token.content.size()) == token.content) {
        match = &token;
        break;
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }

    size_t match_start = pos;
    size_t match_end = pos + match->content.size();
    if (match->lstrip) {
      while (size_t length = whitespace_before(text.substr(0, match_start), match_start)) {
        if (match_start - length < text_start) break;
        match_start -= length;
      }
    }
    if (match->rstrip) {
      while (size_t length = whitespace_at(text, match_end)) match_end += length;
    }
    if (match_start > text_start) on_text(text.substr(text_start, match_start - text_start));
    on_token(match->id);
    text_start = match_end;
    pos = match_end;
  }
  if (text_start < text.size()) on_text(text.substr(text_start));
}

}  // namespace ropepp
