#include "tokenizer/byte_level.h"

#include <array>
#include <cstdint>

namespace ropepp {
namespace {

struct ByteLevelTables {
  std::array<uint32_t, 256> code_point_of_byte{};
  std::array<int, 324> byte_of_code_point{};  // -1 where the code point is not in the alphabet
};

const ByteLevelTables& tables() {
  static const ByteLevelTables instance = [] {
    ByteLevelTables t;
    t.byte_of_code_point.fill(-1);
    uint32_t next_unprintable = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t code_point = printable ? b : next_unprintable++;
      t.code_point_of_byte[b] = code_point;
      t.byte_of_code_point[code_point] = static_cast<int>(b);
    }
    return t;
  }();
  return instance;
}

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else {
    // The alphabet stops at U+0143, so two bytes always suffice.
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const ByteLevelTables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, t.code_point_of_byte[static_cast<uint8_t>(c)]);
  return out;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  const ByteLevelTables& t = tables();
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const uint8_t lead = static_cast<uint8_t>(text[pos]);
    uint32_t code_point = 0;
    if (lead < 0x80) {
      code_point = lead;
      pos += 1;
    } else if (lead >= 0xC2 && lead <= 0xDF && pos + 1 < text.size() &&
               (static_cast<uint8_t>(text[pos + 1]) & 0xC0) == 0x80) {
      code_point = ((lead & 0x1Fu) << 6) | (static_cast<uint8_t>(text[pos + 1]) & 0x3Fu);
      pos += 2;
    } else {
      return std::nullopt;  // longer sequences are all outside the alphabet
    }
    if (code_point >= t.byte_of_code_point.size() || t.byte_of_code_point[code_point] < 0) return std::nullopt;
    out.push_back(static_cast<char>(t.byte_of_code_point[code_point]));
  }
  return out;
}

}  // namespace ropepp
