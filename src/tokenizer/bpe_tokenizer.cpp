#include "tokenizer/bpe_tokenizer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace ropepp {

BpeTokenizer::BpeTokenizer(BpeTokenizerParts parts) : parts_(std::move(parts)) {
  special_.assign(parts_.token_bytes.size(), false);
  for (const AddedToken& token : parts_.added_tokens) {
    added_.add(token);
    if (token.special) {
      special_[token.id] = true;
      special_by_text_.emplace(token.content, token.id);
    }
  }
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, bool allow_special) const {
  const size_t invalid = find_invalid_utf8(text);
  ROPEPP_CHECK(invalid == std::string_view::npos,
               "tokenizer: the text to encode is not valid UTF-8 (invalid byte 0x{:02X} at offset {} of {}); "
               "repair it first, e.g. with replace_invalid_utf8()",
               static_cast<uint8_t>(text[invalid]), invalid, text.size());

  std::vector<TokenId> ids;
  if (text.empty()) return ids;  // also with add_prefix_space, as in Hugging Face tokenizers
  ids.reserve(text.size() / 3 + 1);
  if (added_.empty()) {
    encode_text(text, ids);
  } else {
    added_.split(
        text, allow_special, [&](std::string_view segment) { encode_text(segment, ids); },
        [&](TokenId id) { ids.push_back(id); });
  }
  return ids;
}

void BpeTokenizer::encode_text(std::string_view text, std::vector<TokenId>& out) const {
  if (parts_.add_prefix_space && text.front() != ' ') {
    std::string prefixed;
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    split_and_encode(prefixed, 0, out);
  } else {
    split_and_encode(text, 0, out);
  }
}

void BpeTokenizer::split_and_encode(std::string_view text, size_t splitter_index, std::vector<TokenId>& out) const {
  if (splitter_index == parts_.splitters.size()) {
    encode_pre_token(text, out);
    return;
  }
  parts_.splitters[splitter_index]->split(
      text, [&](std::string_view piece) { split_and_encode(piece, splitter_index + 1, out); });
}

void BpeTokenizer::encode_pre_token(std::string_view piece, std::vector<TokenId>& out) const {
  if (piece.size() == 1) {
    parts_.model->encode_piece(piece, out);
    return;
  }
  CacheShard& shard = cache_[std::hash<std::string_view>{}(piece) % kCacheShards];
  {
    std::lock_guard lock(shard.mutex);
    const auto found = shard.entries.find(piece);
    if (found != shard.entries.end()) {
      out.insert(out.end(), found->second.begin(), found->second.end());
      return;
    }
  }

  const size_t begin = out.size();
  parts_.model->encode_piece(piece, out);

  std::lock_guard lock(shard.mutex);
  // A full shard stops growing: the common words of a text arrive early.
  if (shard.entries.size() < kCacheEntriesPerShard) {
    shard.entries.emplace(std::string(piece), std::vector<TokenId>(out.begin() + static_cast<std::ptrdiff_t>(begin), out.end()));
  }
}

const std::string& BpeTokenizer::token_bytes(TokenId id) const {
  ROPEPP_CHECK(id >= 0 && id < vocab_size(), "tokenizer: token id {} is out of range [0, {}) for {}", id, vocab_size(),
               parts_.source);
  return parts_.token_bytes[id];
}

std::optional<TokenId> BpeTokenizer::special_token_id(std::string_view text) const {
  const auto found = special_by_text_.find(std::string(text));
  if (found == special_by_text_.end()) return std::nullopt;
  return found->second;
}

bool BpeTokenizer::is_special(TokenId id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

std::string BpeTokenizer::description() const {
  return fmt::format("byte-level BPE from {}, {} tokens ({} special)", parts_.source, vocab_size(),
                     special_by_text_.size());
}

}  // namespace ropepp
