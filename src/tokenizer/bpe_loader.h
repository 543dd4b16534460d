// Loading byte-level BPE tokenizers from Hugging Face tokenizer.json or from
// GPT-2's vocab.json + merges.txt. Every check names the file and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/bpe_tokenizer.h"

namespace ropepp {

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& path);
std::unique_ptr<Tokenizer> load_gpt2_files(const std::filesystem::path& vocab_path,
                                           const std::filesystem::path& merges_path);

// The vocabulary and merges as read from a file, in byte-level text form.
struct BpeFileContents {
  std::string vocab_source;   // e.g. "tokenizer.json: model.vocab", for messages
  std::vector<std::pair<std::string, int64_t>> vocab;  // token text, id
  std::vector<std::pair<std::string, std::string>> merges;
  std::function<std::string(size_t)> merge_location;  // where merge i is, e.g. "merges.txt line 7"
  std::vector<AddedToken> added_tokens;
  std::string added_source;  // e.g. "tokenizer.json: added_tokens"
  bool ignore_merges = false;
};

// Validates ids (in range, unique, no gaps), merges (known tokens, merged
// token in the vocabulary) and the 256 byte tokens, then builds the model.
// Splitters and bos/eos are left for the caller to set.
BpeTokenizerParts build_bpe_parts(const BpeFileContents& contents);

// Returns `text` as a JSON string literal for messages; invalid UTF-8 (as in
// a corrupt merges.txt) shows as U+FFFD.
std::string quote(std::string_view text);

// Sets parts.bos/eos from tokenizer_config.json in `folder` when it exists,
// else from well-known token texts ("<|begin_of_text|>", "<|endoftext|>", ...).
void assign_bos_eos(BpeTokenizerParts& parts, const std::filesystem::path& folder);

}  // namespace ropepp
