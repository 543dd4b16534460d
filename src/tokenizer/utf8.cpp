#include "tokenizer/utf8.h"

#include <cstdint>

namespace ropepp {
namespace {

enum class SequenceKind { kValid, kInvalid, kTruncated };

struct Sequence {
  SequenceKind kind;
  size_t length;  // valid: the character's length; invalid: the maximal invalid subpart; truncated: bytes present
};

// Classifies the sequence that starts at text[pos] (Unicode table 3-7 of
// well-formed byte sequences).
Sequence classify(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[pos + i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return {SequenceKind::kValid, 1};

  size_t length = 0;
  uint8_t second_min = 0x80;
  uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return {SequenceKind::kInvalid, 1};
  }

  const size_t available = text.size() - pos;
  for (size_t i = 1; i < length; ++i) {
    if (i >= available) return {SequenceKind::kTruncated, i};
    const uint8_t min = i == 1 ? second_min : 0x80;
    const uint8_t max = i == 1 ? second_max : 0xBF;
    if (byte(i) < min || byte(i) > max) return {SequenceKind::kInvalid, i};
  }
  return {SequenceKind::kValid, length};
}

}  // namespace

size_t find_invalid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Sequence sequence = classify(text, pos);
    if (sequence.kind != SequenceKind::kValid) return pos;
    pos += sequence.length;
  }
  return std::string_view::npos;
}

std::string replace_invalid_utf8(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const Sequence sequence = classify(text, pos);
    if (sequence.kind == SequenceKind::kValid) {
      out.append(text.substr(pos, sequence.length));
    } else {
      out.append(kReplacement);
    }
    pos += sequence.length;
  }
  return out;
}

size_t complete_utf8_prefix(std::string_view bytes) {
  // Only the last three bytes can start an incomplete character.
  const size_t first = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t pos = first; pos < bytes.size(); ++pos) {
    const uint8_t b = static_cast<uint8_t>(bytes[pos]);
    if (b < 0xC2 || b > 0xF4) continue;  // not a lead byte of a multi-byte character
    const Sequence sequence = classify(bytes, pos);
    if (sequence.kind == SequenceKind::kTruncated) return pos;
  }
  return bytes.size();
}

}  // namespace ropepp
