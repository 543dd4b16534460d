// Byte-level BPE tokenizer (Llama-3, GPT-2): added tokens are matched first,
// the rest of the text is split into pre-tokens by regular expressions, and
// each pre-token's bytes are merged by BpeModel.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {

// Everything a loader (tokenizer_json.cpp, gpt2_files.cpp) has validated.
struct BpeTokenizerParts {
  std::string source;                     // file(s) loaded, for descriptions
  std::vector<std::string> token_bytes;   // by id, dense; added tokens hold their text
  std::vector<AddedToken> added_tokens;   // matched in text before pre-tokenization
  std::unique_ptr<BpeModel> model;
  // Applied in order, each to every piece the previous one produced.
  std::vector<std::unique_ptr<RegexSplitter>> splitters;
  bool add_prefix_space = false;  // ByteLevel: a space before text that starts with none
  std::optional<TokenId> bos;
  std::optional<TokenId> eos;
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeTokenizerParts parts);

  std::vector<TokenId> encode(std::string_view text, bool allow_special = false) const override;
  const std::string& token_bytes(TokenId id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(parts_.token_bytes.size()); }
  std::optional<TokenId> special_token_id(std::string_view text) const override;
  bool is_special(TokenId id) const override;
  std::optional<TokenId> bos_id() const override { return parts_.bos; }
  std::optional<TokenId> eos_id() const override { return parts_.eos; }
  std::string description() const override;

 private:
  void encode_text(std::string_view text, std::vector<TokenId>& out) const;
  void split_and_encode(std::string_view text, size_t splitter_index, std::vector<TokenId>& out) const;
  void encode_pre_token(std::string_view piece, std::vector<TokenId>& out) const;

  BpeTokenizerParts parts_;
  AddedTokenMatcher added_;
  std::vector<bool> special_;
  std::unordered_map<std::string, TokenId> special_by_text_;

  // Cache of pre-token -> ids: text repeats its words, and merging is the
  // costly step. Sharded so that threads encoding at once rarely contend.
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheEntriesPerShard = 1 << 14;
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> entries;
  };
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace ropepp
