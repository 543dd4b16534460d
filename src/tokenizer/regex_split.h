// Pre-tokenization by regular expression, run by PCRE2 in UTF mode with
// Unicode properties (PCRE2_UTF | PCRE2_UCP) and JIT compilation. This
// reproduces Hugging Face's "Split" pre-tokenizer with behavior "Isolated":
// every match is one piece, and so is every stretch of text between matches.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace ropepp {

// GPT-2's pre-tokenizer pattern, which Hugging Face's ByteLevel pre-tokenizer
// uses when "use_regex" is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class RegexSplitter {
 public:
  // Compiles `pattern` (a regular expression, or a literal string when
  // `literal`). Throws ropepp::Error naming `source` (file and field) when
  // PCRE2 rejects it.
  RegexSplitter(std::string_view pattern, bool literal, const std::string& source);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Calls on_piece for each piece of `text`, in order; pieces are never empty
  // and cover the text. `text` must be valid UTF-8 (not checked again here).
  void split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ropepp
