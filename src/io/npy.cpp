#include "io/npy.h"

#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ropepp {
namespace {

static_assert(std::endian::native == std::endian::little, "the .npy code writes and reads little-endian float32");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

// The fields of a .npy header dictionary, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// A small parser for the Python literal NumPy writes. It accepts the three
// keys in any order and rejects anything else.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

  NpyHeader parse() {
    NpyHeader header;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (true) {
      skip_spaces();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        header.descr = quoted();
        has_descr = true;
      } else if (key == "fortran_order") {
        header.fortran_order = boolean();
        has_order = true;
      } else if (key == "shape") {
        header.shape = tuple();
        has_shape = true;
      } else {
        fail("{}: unexpected key '{}' in the .npy header", file_, key);
      }
      skip_spaces();
      if (peek() == ',') {
        ++position_;
        continue;
      }
      if (peek() != '}') error("',' or '}'");
    }
    ++position_;
    if (!has_descr || !has_order || !has_shape) {
      fail("{}: the .npy header lacks one of 'descr', 'fortran_order' and 'shape'", file_);
    }
    return header;
  }

 private:
  char peek() const { return position_ < text_.size() ? text_[position_] : '\0'; }

  void skip_spaces() {
    while (position_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[position_]))) ++position_;
  }

  [[noreturn]] void error(const char* expected) const {
    fail("{}: invalid .npy header at character {}: expected {} in {}", file_, position_, expected,
         std::string(text_.substr(0, 120)));
  }

  void expect(char c) {
    skip_spaces();
    if (peek() != c) error(std::string(1, c).c_str());
    ++position_;
  }

  std::string quoted() {
    skip_spaces();
    const char quote = peek();
    if (quote != '\'' && quote != '"') error("a quoted string");
    const size_t end = text_.find(quote, position_ + 1);
    if (end == std::string_view::npos) error("a closing quote");
    std::string value(text_.substr(position_ + 1, end - position_ - 1));
    position_ = end + 1;
    return value;
  }

  bool boolean() {
    skip_spaces();
    if (text_.substr(position_, 4) == "True") {
      position_ += 4;
      return true;
    }
    if (text_.substr(position_, 5) == "False") {
      position_ += 5;
      return false;
    }
    error("True or False");
  }

  std::vector<int64_t> tuple() {
    std::vector<int64_t> values;
    expect('(');
    while (true) {
      skip_spaces();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) error("a non-negative integer");
      int64_t value = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (value > (INT64_MAX - 9) / 10) error("a dimension below 2^63");
        value = value * 10 + (peek() - '0');
        ++position_;
      }
      values.push_back(value);
      skip_spaces();
      if (peek() == ',') {
        ++position_;
      } else if (peek() != ')') {
        error("',' or ')'");
      }
    }
    ++position_;
    return values;
  }

  std::string_view text_;
  std::string file_;
  size_t position_ = 0;
};

std::string shape_tuple(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape.front());
  return fmt::format("({})", fmt::join(shape, ", "));
}

}  // namespace

void write_npy_f32(const std::filesystem::path& path, const float* data, const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (const int64_t dimension : shape) {
    if (dimension < 0) fail("cannot write {}: negative dimension {} in the shape", path.string(), dimension);
    count *= static_cast<uint64_t>(dimension);
  }
  if (count > 0 && data == nullptr) fail("cannot write {}: no data", path.string());

  // Format version 1.0: magic, version, a 2-byte header length, then the
  // header padded with spaces and ended by '\n' so the data starts at a
  // multiple of 64 bytes, as NumPy itself writes it.
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape_tuple(shape));
  const size_t unpadded = kMagicSize + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 65535) fail("cannot write {}: shape {} is too long for a .npy header", path.string(),
                                  shape_tuple(shape));

  write_file_atomic(path, [&](std::FILE* stream) {
    const auto put = [&](const void* bytes, size_t size) {
      if (size > 0 && std::fwrite(bytes, 1, size, stream) != size) {
        fail("writing {} failed: {} (is the disk full?)", path.string(), std::strerror(errno));
      }
    };
    const unsigned char version[2] = {1, 0};
    const uint16_t header_size = static_cast<uint16_t>(header.size());
    put(kMagic, kMagicSize);
    put(version, sizeof(version));
    put(&header_size, sizeof(header_size));
    put(header.data(), header.size());
    put(data, count * sizeof(float));
  });
}

std::vector<float> read_npy_f32(const std::filesystem::path& path, std::vector<int64_t>& shape) {
  const std::string file = path.string();
  std::ifstream stream(path, std::ios::binary);
  if (!stream) fail("{}: not found or not readable", file);
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  const std::string bytes = buffer.str();

  if (bytes.size() < kMagicSize + 4 || bytes.compare(0, kMagicSize, kMagic, kMagicSize) != 0) {
    fail("{}: not a .npy file (the magic string \\x93NUMPY is missing)", file);
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_size = 0;
  size_t header_start = 0;
  if (major == 1) {
    uint16_t size16 = 0;
    std::memcpy(&size16, bytes.data() + 8, sizeof(size16));
    header_size = size16;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("{}: truncated .npy header", file);
    uint32_t size32 = 0;
    std::memcpy(&size32, bytes.data() + 8, sizeof(size32));
    header_size = size32;
    header_start = 12;
  } else {
    fail("{}: unsupported .npy format version {}.{}: expected 1.0, 2.0 or 3.0", file, major,
         static_cast<unsigned char>(bytes[7]));
  }
  if (header_size > bytes.size() - header_start) {
    fail("{}: the .npy header claims {} bytes, but the file has {} after the length field", file, header_size,
         bytes.size() - header_start);
  }

  const NpyHeader header =
      HeaderParser(std::string_view(bytes).substr(header_start, header_size), file).parse();
  if (header.descr != "<f4") {
    fail("{}: dtype '{}' is not supported: expected little-endian float32 ('<f4')", file, header.descr);
  }
  if (header.fortran_order) fail("{}: Fortran-ordered arrays are not supported: save a C-ordered array", file);

  uint64_t count = 1;
  for (const int64_t dimension : header.shape) {
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dimension), &count)) {
      fail("{}: shape {} overflows", file, shape_tuple(header.shape));
    }
  }
  const size_t data_start = header_start + header_size;
  const uint64_t available = bytes.size() - data_start;
  if (count > available / sizeof(float) || count * sizeof(float) != available) {
    fail("{}: shape {} needs {} bytes of float32 data, but the file holds {}", file, shape_tuple(header.shape),
         count > available ? std::string("more") : std::to_string(count * sizeof(float)), available);
  }

  std::vector<float> values(count);
  if (count > 0) std::memcpy(values.data(), bytes.data() + data_start, count * sizeof(float));
  shape = header.shape;
  return values;
}

}  // namespace ropepp
