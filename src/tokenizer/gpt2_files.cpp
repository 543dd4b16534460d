// GPT-2's original files: vocab.json (token text -> id) and merges.txt (one
// "left right" merge per line, after an optional "#version" line).
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/bpe_loader.h"

namespace ropepp {

std::unique_ptr<Tokenizer> load_gpt2_files(const std::filesystem::path& vocab_path,
                                           const std::filesystem::path& merges_path) {
  BpeFileContents contents;
  const std::string vocab_file = vocab_path.string();
  const std::string merges_file = merges_path.string();

  std::ifstream vocab_in(vocab_path, std::ios::binary);
  ROPEPP_CHECK(vocab_in.good(), "{}: cannot open the vocabulary file", vocab_file);
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_in);
  } catch (const nlohmann::json::exception& error) {
    fail("{}: invalid JSON: {}", vocab_file, error.what());
  }
  ROPEPP_CHECK(vocab.is_object(), "{}: expected a JSON object mapping token text to id, found a JSON {}", vocab_file,
               vocab.type_name());
  contents.vocab_source = vocab_file;
  for (const auto& [text, id] : vocab.items()) {
    ROPEPP_CHECK(id.is_number_integer(), "{}: token {} has id {}; expected an integer", vocab_file,
                 quote(text), id.dump());
    contents.vocab.emplace_back(text, id.get<int64_t>());
  }

  std::ifstream merges_in(merges_path, std::ios::binary);
  ROPEPP_CHECK(merges_in.good(), "{}: cannot open the merges file", merges_file);
  std::vector<size_t> line_numbers;
  std::string line;
  for (size_t line_number = 1; std::getline(merges_in, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    ROPEPP_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                     line.find(' ', space + 1) == std::string::npos,
                 "{} line {}: {} is not a merge; expected two tokens separated by one space", merges_file,
                 line_number, quote(line));
    contents.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    line_numbers.push_back(line_number);
  }
  contents.merge_location = [merges_file, line_numbers](size_t i) {
    return fmt::format("{} line {}", merges_file, line_numbers[i]);
  };

  // GPT-2 has one special token, which vocab.json lists as an ordinary one.
  contents.added_source = vocab_file;
  for (const auto& [text, id] : contents.vocab) {
    if (text == "<|endoftext|>") contents.added_tokens.push_back(AddedToken{text, static_cast<TokenId>(id)});
  }

  BpeTokenizerParts parts = build_bpe_parts(contents);
  parts.source = fmt::format("{} + {}", vocab_file, merges_file);
  parts.splitters.push_back(std::make_unique<RegexSplitter>(kGpt2Pattern, false, "GPT-2 pre-tokenizer"));
  assign_bos_eos(parts, vocab_path.parent_path());
  return std::make_unique<BpeTokenizer>(std::move(parts));
}

}  // namespace ropepp
