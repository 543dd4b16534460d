// Tokenized corpora cached on disk, read back through a memory map so a corpus
// larger than memory streams from the page cache.
//
// A cache is a folder:
//   manifest.json   sources (path, size, mtime), tokenizer identity, counts
//   tokens.bin      int32 little-endian token ids of all documents, back to back
//   documents.bin   uint64 little-endian offsets: document i is tokens
//                   [offset[i], offset[i+1]); n_documents + 1 values
// The folder is built under a temporary name and renamed into place, so a
// reader sees a complete cache or none.
//
// Inputs: plain-text files (one document each), JSON-lines files (*.jsonl,
// one document per line: the string field text_field of each object), and
// folders, searched recursively for *.txt, *.md and *.jsonl in sorted order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ropepp::train {

struct CorpusOptions {
  std::vector<std::filesystem::path> inputs;  // files or folders
  std::string text_field = "text";            // JSON-lines field holding the text
  bool add_bos = true;                        // prepend the tokenizer's BOS to each document, if it has one
  bool add_eos = true;                        // append its EOS, if it has one
};

// One input file with the size and modification time recorded in a manifest.
struct SourceFile {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

// Expands inputs into the list of files read, in a stable order, with their
// current size and mtime. Throws ropepp::Error for a missing input.
std::vector<SourceFile> list_source_files(const std::vector<std::filesystem::path>& inputs);

// Identity of a tokenizer for cache validation: its description, vocabulary
// size and, for a file, the canonical path, size and mtime.
std::string tokenizer_identity(const Tokenizer& tokenizer, const std::string& path_or_name);

class TokenCache {
 public:
  // Opens a cache folder and validates it against the current sources and
  // tokenizer: a stale or foreign cache is rejected with ropepp::Error saying
  // what changed (delete the folder or use --rebuild-cache).
  TokenCache(const std::filesystem::path& directory, const CorpusOptions& options,
             const std::string& tokenizer_identity);
  ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // Tokenizes the sources into `directory` (replacing any cache there) with a
  // progress bar. Documents are encoded in parallel batches.
  static void build(const std::filesystem::path& directory, const CorpusOptions& options, const Tokenizer& tokenizer,
                    const std::string& tokenizer_identity);

  // Opens the cache when it is valid, else (re)builds it first.
  static std::unique_ptr<TokenCache> open_or_build(const std::filesystem::path& directory,
                                                   const CorpusOptions& options, const Tokenizer& tokenizer,
                                                   const std::string& tokenizer_identity);

  const std::filesystem::path& directory() const { return directory_; }
  int64_t n_documents() const { return n_documents_; }
  int64_t n_tokens() const { return n_tokens_; }
  int32_t vocab_size() const { return vocab_size_; }
  // Fingerprint of the cached token stream (sources and tokenizer), for checkpoints.
  const std::string& fingerprint() const { return fingerprint_; }

  std::span<const int32_t> document(int64_t index) const {
    return {tokens_ + offsets_[index], static_cast<size_t>(offsets_[index + 1] - offsets_[index])};
  }
  int64_t document_length(int64_t index) const { return static_cast<int64_t>(offsets_[index + 1] - offsets_[index]); }

 private:
  std::filesystem::path directory_;
  int64_t n_documents_ = 0, n_tokens_ = 0;
  int32_t vocab_size_ = 0;
  std::string fingerprint_;
  void* token_map_ = nullptr;
  size_t token_map_size_ = 0;
  void* offset_map_ = nullptr;
  size_t offset_map_size_ = 0;
  const int32_t* tokens_ = nullptr;
  const uint64_t* offsets_ = nullptr;
};

}  // namespace ropepp::train
