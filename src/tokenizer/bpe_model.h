// Byte-pair-encoding merges over raw bytes: the "model" part of a byte-level
// BPE tokenizer, applied to one pre-token at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ropepp {

// Hash for maps keyed by std::string that can be searched with a
// std::string_view without building a string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using PieceMap = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

struct BpeMerge {
  TokenId left = 0;
  TokenId right = 0;
  TokenId merged = 0;
};

class BpeModel {
 public:
  // byte_ids[b]: the token of the single byte b (all 256 must exist).
  // pieces: raw bytes -> id of every vocabulary token, for ignore_merges.
  // merges: in priority order (rank = index); a later duplicate of the same
  // (left, right) pair is ignored.
  // ignore_merges: a pre-token that is itself a vocabulary token becomes that
  // token without merging (Llama-3); otherwise merging alone decides (GPT-2).
  BpeModel(std::vector<TokenId> byte_ids, PieceMap pieces,
           const std::vector<BpeMerge>& merges, bool ignore_merges);

  // Appends the ids of one pre-token (raw bytes, not empty) to `out`.
  void encode_piece(std::string_view bytes, std::vector<TokenId>& out) const;

  // The two merge strategies encode_piece picks between by length, exposed
  // so that tests can check them against each other on any input.
  void merge_by_scan(std::vector<TokenId>& symbols) const;
  void merge_by_heap(std::vector<TokenId>& symbols) const;

 private:
  struct MergeSlot {
    uint64_t key = kEmptyKey;  // (left << 32) | right
    int32_t rank = 0;
    TokenId merged = 0;
  };
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};

  // Returns the slot of the merge of (left, right), or nullptr when there is none.
  const MergeSlot* find_merge(TokenId left, TokenId right) const {
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
    for (size_t i = hash_key(key) & slot_mask_;; i = (i + 1) & slot_mask_) {
      const MergeSlot& slot = slots_[i];
      if (slot.key == key) return &slot;
      if (slot.key == kEmptyKey) return nullptr;
    }
  }
  static size_t hash_key(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return static_cast<size_t>(key);
  }

  std::vector<TokenId> byte_ids_;
  PieceMap pieces_;
  // Open-addressing table of merges, linear probing, at most half full.
  std::vector<MergeSlot> slots_;
  size_t slot_mask_ = 0;
  bool ignore_merges_ = false;
};

}  // namespace ropepp
