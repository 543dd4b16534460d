#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/bpe_loader.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/utf8.h"

namespace ropepp {

std::string Tokenizer::decode(std::span<const TokenId> ids) const {
  std::string text;
  for (TokenId id : ids) text += token_bytes(id);
  return text;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path_or_name) {
  namespace fs = std::filesystem;
  if (path_or_name == "byte") return std::make_unique<ByteTokenizer>();

  const fs::path path(path_or_name);
  ROPEPP_CHECK(fs::exists(path),
               "tokenizer {}: not found; expected a tokenizer.json file, a folder with tokenizer.json or with "
               "vocab.json + merges.txt, or the name \"byte\"",
               path_or_name);
  if (fs::is_regular_file(path)) return load_tokenizer_json(path);

  if (fs::is_regular_file(path / "tokenizer.json")) return load_tokenizer_json(path / "tokenizer.json");
  if (fs::is_regular_file(path / "vocab.json") && fs::is_regular_file(path / "merges.txt")) {
    return load_gpt2_files(path / "vocab.json", path / "merges.txt");
  }
  fail("tokenizer folder {}: has neither tokenizer.json nor vocab.json + merges.txt", path_or_name);
}

std::string StreamDecoder::push(TokenId id) {
  pending_ += tokenizer_.token_bytes(id);
  const size_t complete = complete_utf8_prefix(pending_);
  std::string ready = pending_.substr(0, complete);
  pending_.erase(0, complete);
  return ready;
}

std::string StreamDecoder::finish() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace ropepp
