// UTF-8 validation and repair (RFC 3629: no surrogates, no overlong forms,
// nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ropepp {

// Returns the byte offset of the first invalid or truncated sequence, or
// std::string_view::npos when `text` is valid UTF-8.
size_t find_invalid_utf8(std::string_view text);

// Replaces every maximal invalid subpart with one U+FFFD, as the Unicode
// Standard recommends. The result equals Python 3.11's
// `bytes.decode("utf-8", errors="replace")` on the cases in the tests.
std::string replace_invalid_utf8(std::string_view text);

// Returns the length of the longest prefix of `bytes` that does not end inside
// a character that could still be completed by more bytes. Bytes that can
// never be part of a valid character count as complete.
size_t complete_utf8_prefix(std::string_view bytes);

}  // namespace ropepp
