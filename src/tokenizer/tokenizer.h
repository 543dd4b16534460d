// Tokenizers: text (UTF-8) to token ids and back.
//
// Two kinds are implemented: byte-level BPE as in Hugging Face `tokenizer.json`
// (Llama-3, GPT-2) and a plain byte tokenizer for small models trained from
// scratch. Token ids are int32. Decoding returns bytes: a token can hold part
// of a multi-byte UTF-8 character, so only a whole sequence of ids is
// guaranteed to decode to valid UTF-8, and StreamDecoder exists for output
// that is produced one token at a time.
//
// A Tokenizer is immutable after loading, and every const method may be called
// from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ropepp {

using TokenId = int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes UTF-8 text. Special-token text (e.g. "<|begin_of_text|>") becomes
  // its special id only when allow_special is true; otherwise it is encoded as
  // ordinary text. Adds no BOS: callers prepend bos_id() where the model
  // expects it. Throws ropepp::Error when `text` is not valid UTF-8 (see
  // replace_invalid_utf8 for a lossy alternative).
  virtual std::vector<TokenId> encode(std::string_view text, bool allow_special = false) const = 0;

  // Returns the bytes of one token: the raw bytes for ordinary tokens, the
  // token's text for special tokens. Throws ropepp::Error for an id outside
  // [0, vocab_size()).
  virtual const std::string& token_bytes(TokenId id) const = 0;

  // Number of ids, special tokens included: every valid id is below it.
  virtual int32_t vocab_size() const = 0;

  // Returns the id of a special token by its text ("<|end_of_text|>"), or
  // nullopt when there is none with that text.
  virtual std::optional<TokenId> special_token_id(std::string_view text) const = 0;

  virtual bool is_special(TokenId id) const = 0;

  // Beginning- and end-of-text ids, when the tokenizer defines them.
  virtual std::optional<TokenId> bos_id() const = 0;
  virtual std::optional<TokenId> eos_id() const = 0;

  // Short description for logs, e.g. "byte tokenizer, 259 tokens (3 special)".
  virtual std::string description() const = 0;

  // Concatenates token_bytes of every id. The result is valid UTF-8 when the
  // ids came from encode() of valid text, but not for arbitrary ids.
  std::string decode(std::span<const TokenId> ids) const;
};

// Loads a tokenizer from:
//   - a Hugging Face tokenizer.json file, or a folder that contains one;
//   - a folder with vocab.json + merges.txt (GPT-2 layout; "<|endoftext|>" is
//     its special token);
//   - the name "byte": the byte tokenizer (see byte_tokenizer.h).
// A tokenizer_config.json next to the file, when present, sets bos/eos ids.
// Throws ropepp::Error naming the file and field on any invalid input.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path_or_name);

// Decodes a stream of ids into text without ever splitting a multi-byte UTF-8
// character: bytes of an incomplete character are held back until the token
// that completes it arrives. Bytes that can never become part of a valid
// character are passed through unchanged, so the concatenation of everything
// returned by push() and finish() equals Tokenizer::decode of all ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // Adds one token and returns the text that is now complete (maybe empty).
  std::string push(TokenId id);

  // Returns the held-back bytes (an incomplete character at the end of the
  // stream) and resets the decoder.
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace ropepp
