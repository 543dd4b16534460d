#include "tokenizer/bpe_model.h"

#include <bit>
#include <queue>

namespace ropepp {
namespace {

// Pre-tokens up to this many bytes merge by rescanning all pairs, which needs
// no allocation and is fast for the short words that make up most text.
// Longer ones use a heap, so runs of thousands of spaces stay O(n log n).
constexpr size_t kScanMaxSymbols = 48;

}  // namespace

BpeModel::BpeModel(std::vector<TokenId> byte_ids, PieceMap pieces,
                   const std::vector<BpeMerge>& merges, bool ignore_merges)
    : byte_ids_(std::move(byte_ids)), pieces_(std::move(pieces)), ignore_merges_(ignore_merges) {
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, merges.size() * 2));
  slots_.assign(capacity, MergeSlot{});
  slot_mask_ = capacity - 1;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const BpeMerge& merge = merges[rank];
    const uint64_t key =
        (static_cast<uint64_t>(static_cast<uint32_t>(merge.left)) << 32) | static_cast<uint32_t>(merge.right);
    size_t i = hash_key(key) & slot_mask_;
    while (slots_[i].key != kEmptyKey && slots_[i].key != key) i = (i + 1) & slot_mask_;
    if (slots_[i].key == key) continue;  // duplicate: the first (lower) rank stays
    slots_[i] = MergeSlot{key, static_cast<int32_t>(rank), merge.merged};
  }
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<TokenId>& out) const {
  if (ignore_merges_) {
    const auto found = pieces_.find(bytes);
    if (found != pieces_.end()) {
      out.push_back(found->second);
      return;
    }
  }
  std::vector<TokenId> symbols(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) symbols[i] = byte_ids_[static_cast<uint8_t>(bytes[i])];
  if (symbols.size() <= kScanMaxSymbols) {
    merge_by_scan(symbols);
  } else {
    merge_by_heap(symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeModel::merge_by_scan(std::vector<TokenId>& symbols) const {
  // Merge the lowest-ranked adjacent pair, the leftmost one on a tie, until no
  // pair has a merge.
  while (symbols.size() > 1) {
    int32_t best_rank = INT32_MAX;
    size_t best_pos = 0;
    TokenId best_merged = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const MergeSlot* merge = find_merge(symbols[i], symbols[i + 1]);
      if (merge != nullptr && merge->rank < best_rank) {
        best_rank = merge->rank;
        best_pos = i;
        best_merged = merge->merged;
      }
    }
    if (best_rank == INT32_MAX) return;
    symbols[best_pos] = best_merged;
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
}

void BpeModel::merge_by_heap(std::vector<TokenId>& symbols) const {
  // The same merge order as merge_by_scan: a heap of candidate pairs keyed by
  // (rank, position), and a doubly linked list of live symbols. A popped
  // candidate is stale when either of its symbols has changed since it was
  // pushed; stale entries are skipped.
  const int n = static_cast<int>(symbols.size());
  std::vector<int> prev(n);
  std::vector<int> next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }

  struct Candidate {
    int32_t rank;
    int left;
    int right;
    TokenId left_id;
    TokenId right_id;
    TokenId merged;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : left > other.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push_pair = [&](int left) {
    const int right = left >= 0 ? next[left] : -1;
    if (left < 0 || right < 0) return;
    if (const MergeSlot* merge = find_merge(symbols[left], symbols[right])) {
      heap.push(Candidate{merge->rank, left, right, symbols[left], symbols[right], merge->merged});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);

  constexpr TokenId kRemoved = -1;
  while (!heap.empty()) {
    const Candidate candidate = heap.top();
    heap.pop();
    const bool stale = symbols[candidate.left] != candidate.left_id || next[candidate.left] != candidate.right ||
                       symbols[candidate.right] != candidate.right_id;
    if (stale) continue;

    symbols[candidate.left] = candidate.merged;
    symbols[candidate.right] = kRemoved;
    const int after = next[candidate.right];
    next[candidate.left] = after;
    if (after >= 0) prev[after] = candidate.left;
    push_pair(prev[candidate.left]);
    push_pair(candidate.left);
  }

  size_t live_count = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) symbols[live_count++] = symbols[i];
  symbols.resize(live_count);
}

}  // namespace ropepp
