// BpeModel against a slow reference that merges strings, on random merge
// tables and random words, for both merge strategies.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tokenizer/bpe_loader.h"
#include "tokenizer/byte_level.h"

namespace ropepp {
namespace {

// A byte-level vocabulary: the 256 bytes first (id = byte value), then
// merged tokens in the order they are created.
struct RandomBpe {
  BpeFileContents contents;
  std::map<std::string, TokenId> id_of_bytes;
  std::map<std::pair<std::string, std::string>, size_t> rank_of_pair;
};

RandomBpe make_random_bpe(uint32_t seed, int merge_count) {
  RandomBpe bpe;
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    bpe.contents.vocab.emplace_back(bytes_to_byte_level(byte), b);
    bpe.id_of_bytes[byte] = b;
  }
  std::mt19937 rng(seed);
  std::vector<std::string> alphabet = {"a", "b", "c", " "};
  std::vector<std::string> tokens = alphabet;
  while (static_cast<int>(bpe.rank_of_pair.size()) < merge_count) {
    const std::string left = tokens[rng() % tokens.size()];
    const std::string right = tokens[rng() % tokens.size()];
    if (left.size() + right.size() > 10 || bpe.rank_of_pair.count({left, right})) continue;
    const std::string merged = left + right;
    // Several pairs may produce the same token, as in real merge tables.
    if (!bpe.id_of_bytes.count(merged)) {
      const auto id = static_cast<TokenId>(bpe.contents.vocab.size());
      bpe.contents.vocab.emplace_back(bytes_to_byte_level(merged), id);
      bpe.id_of_bytes[merged] = id;
      tokens.push_back(merged);
    }
    bpe.rank_of_pair[{left, right}] = bpe.contents.merges.size();
    bpe.contents.merges.emplace_back(bytes_to_byte_level(left), bytes_to_byte_level(right));
  }
  bpe.contents.vocab_source = "random vocabulary";
  bpe.contents.added_source = "random added tokens";
  bpe.contents.merge_location = [](size_t i) { return "random merge " + std::to_string(i); };
  return bpe;
}

// Merges on strings: the lowest-ranked adjacent pair first, the leftmost
// one on a tie, until no adjacent pair has a merge.
std::vector<TokenId> reference_merge(const RandomBpe& bpe, const std::string& word) {
  std::vector<std::string> symbols;
  for (char c : word) symbols.emplace_back(1, c);
  while (true) {
    size_t best_rank = SIZE_MAX;
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto found = bpe.rank_of_pair.find({symbols[i], symbols[i + 1]});
      if (found != bpe.rank_of_pair.end() && found->second < best_rank) {
        best_rank = found->second;
        best_pos = i;
      }
    }
    if (best_rank == SIZE_MAX) break;
    symbols[best_pos] += symbols[best_pos + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
  std::vector<TokenId> ids;
  for (const std::string& symbol : symbols) ids.push_back(bpe.id_of_bytes.at(symbol));
  return ids;
}

TEST(BpeModel, ScanAndHeapMatchReference) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const RandomBpe bpe = make_random_bpe(seed, 300);
    const BpeTokenizerParts parts = build_bpe_parts(bpe.contents);
    std::mt19937 rng(seed * 7919);
    for (int trial = 0; trial < 300; ++trial) {
      // Lengths 1..200 cover both sides of the strategy switch.
      const size_t length = 1 + rng() % 200;
      std::string word;
      for (size_t i = 0; i < length; ++i) word += "abc "[rng() % 4];
      const std::vector<TokenId> expected = reference_merge(bpe, word);

      std::vector<TokenId> by_scan(word.begin(), word.end());
      parts.model->merge_by_scan(by_scan);
      EXPECT_EQ(by_scan, expected) << "seed " << seed << " word \"" << word << "\"";

      std::vector<TokenId> by_heap(word.begin(), word.end());
      parts.model->merge_by_heap(by_heap);
      EXPECT_EQ(by_heap, expected) << "seed " << seed << " word \"" << word << "\"";

      std::vector<TokenId> encoded;
      parts.model->encode_piece(word, encoded);
      EXPECT_EQ(encoded, expected) << "seed " << seed << " word \"" << word << "\"";
    }
  }
}

TEST(BpeModel, IgnoreMergesTakesWholeVocabularyTokens) {
  RandomBpe bpe = make_random_bpe(5, 0);
  // "abc" is a token, but the only merge builds "ab".
  bpe.contents.vocab.emplace_back("ab", 256);
  bpe.contents.vocab.emplace_back("abc", 257);
  bpe.contents.merges.emplace_back("a", "b");
  for (bool ignore_merges : {false, true}) {
    bpe.contents.ignore_merges = ignore_merges;
    const BpeTokenizerParts parts = build_bpe_parts(bpe.contents);
    std::vector<TokenId> ids;
    parts.model->encode_piece("abc", ids);
    const std::vector<TokenId> expected = ignore_merges ? std::vector<TokenId>{257} : std::vector<TokenId>{256, 'c'};
    EXPECT_EQ(ids, expected) << "ignore_merges " << ignore_merges;
  }
}

TEST(BpeModel, EqualRanksMergeLeftmostFirst) {
  RandomBpe bpe = make_random_bpe(6, 0);
  bpe.contents.vocab.emplace_back("aa", 256);
  bpe.contents.merges.emplace_back("a", "a");
  const BpeTokenizerParts parts = build_bpe_parts(bpe.contents);
  for (int length : {3, 5, 100}) {
    std::vector<TokenId> ids;
    parts.model->encode_piece(std::string(length, 'a'), ids);
    std::vector<TokenId> expected(length / 2, 256);
    if (length % 2) expected.push_back('a');
    EXPECT_EQ(ids, expected) << "length " << length;
  }
}

}  // namespace
}  // namespace ropepp
