#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex_split.h"

#include <pcre2.h>

#include "core/error.h"
#include "core/log.h"

namespace ropepp {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
struct MatchContextDeleter {
  void operator()(pcre2_match_context* context) const { pcre2_match_context_free(context); }
};
struct JitStackDeleter {
  void operator()(pcre2_jit_stack* stack) const { pcre2_jit_stack_free(stack); }
};

}  // namespace

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  std::string source;  // names the pattern in matching errors
};

RegexSplitter::RegexSplitter(std::string_view pattern, bool literal, const std::string& source)
    : impl_(std::make_unique<Impl>()) {
  impl_->source = source;
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2 rejects PCRE2_UCP together with PCRE2_LITERAL, and a literal needs no
  // Unicode character classes anyway.
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error_code,
                              &error_offset, nullptr);
  if (impl_->code == nullptr) {
    fail("{}: invalid pre-tokenizer regex at offset {}: {} (pattern: {})", source, error_offset,
         pcre2_message(error_code), pattern);
  }
  // JIT only speeds matching up. Without it (a PCRE2 built without JIT), the
  // interpreter finds the same matches.
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(impl_->code); }

void RegexSplitter::split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match_data(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr));
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> context;
  std::unique_ptr<pcre2_jit_stack, JitStackDeleter> jit_stack;
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());

  size_t gap_start = 0;  // start of the text not covered by a match yet
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, match_data.get(), context.get());
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // NOTE: a guard that no test reaches. Runs of 4 MiB of one character
      // class still fit PCRE2's default 32 KiB JIT stack with these patterns.
      spdlog::debug("pre-tokenizer: the match at byte {} needs a larger PCRE2 JIT stack", pos);
      jit_stack.reset(pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr));
      context.reset(pcre2_match_context_create(nullptr));
      ROPEPP_CHECK(jit_stack && context, "pre-tokenizer: out of memory for the PCRE2 JIT stack");
      pcre2_jit_stack_assign(context.get(), nullptr, jit_stack.get());
      rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, match_data.get(), context.get());
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    ROPEPP_CHECK(rc >= 0,
                 "{}: PCRE2 matching failed at byte {} of a {}-byte text: {} (simplify the pre-tokenizer regex, "
                 "e.g. remove nested repetition such as (a+)+)",
                 impl_->source, pos, text.size(), pcre2_message(rc));

    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data.get());
    const size_t start = ovector[0];
    const size_t end = ovector[1];
    if (end == start) {
      // An empty match splits nothing; step over one whole character.
      ++pos;
      while (pos < text.size() && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > gap_start) on_piece(text.substr(gap_start, start - gap_start));
    on_piece(text.substr(start, end - start));
    gap_start = end;
    pos = end;
  }
  if (gap_start < text.size()) on_piece(text.substr(gap_start));
}

}  // namespace ropepp
