// The byte-to-character mapping of GPT-2 style byte-level BPE ("ByteLevel" in
// Hugging Face tokenizers): each of the 256 byte values is shown as one
// printable Unicode character, so vocabulary and merge files store tokens as
// text. Printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) map to
// themselves; the other 68 map, in byte order, to U+0100, U+0101, ...
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ropepp {

// Returns the mapped text (UTF-8) of raw bytes.
std::string bytes_to_byte_level(std::string_view bytes);

// Returns the raw bytes of mapped text, or nullopt when `text` is not valid
// UTF-8 or contains a character outside the 256-character alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view text);

}  // namespace ropepp
