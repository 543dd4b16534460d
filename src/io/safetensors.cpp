#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/bf16.h"
#include "core/error.h"
#include "io/json_file.h"

namespace ropepp {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors and the float conversions here assume a little-endian host");

using json = nlohmann::json;

// Hugging Face's safetensors library rejects headers above 100,000,000 bytes.
// ropepp uses the same bound, so an absurd size field fails early.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Data types that exist in the safetensors format but that ropepp does not load.
const std::set<std::string>& other_safetensors_dtypes() {
  static const std::set<std::string> names = {"BOOL", "U8",  "I8",  "U16", "I16",     "U32",     "I32",
                                              "U64",  "I64", "F64", "F8_E4M3", "F8_E5M2", "F4",  "F6_E2M3",
                                              "F6_E3M2", "F8_E8M0", "C64"};
  return names;
}

DType parse_dtype(const std::string& name, const std::string& file, const std::string& tensor) {
  if (name == "F32") return DType::kF32;
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  if (other_safetensors_dtypes().count(name) != 0) {
    fail("{}: tensor {} has dtype {}, which ropepp does not load: expected F32, BF16 or F16 (convert the "
         "checkpoint's floating-point weights to one of them)",
         file, tensor, name);
  }
  fail("{}: tensor {} has unknown dtype \"{}\": expected F32, BF16 or F16", file, tensor, name);
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Parses the JSON header and rejects a key that appears twice in one object,
// which nlohmann::json would otherwise resolve silently by keeping the last.
// Nesting deeper than a valid header (root, entry, shape array, dimension) is
// rejected while parsing, so a deeply nested header cannot exhaust memory.
json parse_header(const char* begin, size_t size, const std::string& file) {
  constexpr int kMaxDepth = 3;
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const json::parser_callback_t track_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxDepth) {
      fail("{}: invalid header: JSON nested deeper than a safetensors header ({} levels)", file, kMaxDepth + 1);
    }
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };

  json header;
  try {
    header = json::parse(begin, begin + size, track_keys);
  } catch (const json::parse_error& error) {
    fail("{}: invalid JSON in the {}-byte header at byte {}: {}", file, size, error.byte,
         printable_parse_error(error));
  } catch (const json::exception& error) {
    // nlohmann::json reports a number too large for a double as out_of_range.
    fail("{}: invalid JSON in the {}-byte header: {}", file, size, printable_parse_error(error));
  }
  if (!duplicate.empty()) {
    fail("{}: the header names \"{}\" twice: every tensor (and every field of one tensor) must appear once", file,
         duplicate);
  }
  if (!header.is_object()) {
    fail("{}: invalid header: expected a JSON object mapping tensor names to entries, found {}", file,
         header.type_name());
  }
  return header;
}

uint64_t read_offset(const json& value, const std::string& file, const std::string& name) {
  if (!value.is_number_unsigned()) {
    fail("{}: tensor {} has invalid data_offsets {}: expected two non-negative integers", file, name,
         value.dump());
  }
  return value.get<uint64_t>();
}

// A validated header entry before it becomes a TensorView.
struct Entry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Entry parse_entry(const std::string& name, const json& value, const std::string& file) {
  if (!value.is_object()) {
    fail("{}: tensor {} has an invalid entry {}: expected an object with dtype, shape and data_offsets", file, name,
         value.dump().substr(0, 80));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) fail("{}: tensor {} has no {}", file, name, key);
  }

  Entry entry;
  entry.name = name;
  const json& dtype = value.at("dtype");
  if (!dtype.is_string()) fail("{}: tensor {} has invalid dtype {}: expected a string", file, name, dtype.dump());
  entry.dtype = parse_dtype(dtype.get<std::string>(), file, name);

  // The element count is checked for overflow here, before any arithmetic on it.
  const json& shape = value.at("shape");
  if (!shape.is_array()) fail("{}: tensor {} has invalid shape {}: expected an array", file, name, shape.dump());
  uint64_t elements = 1;
  bool overflow = false;
  for (const json& dimension : shape) {
    if (!dimension.is_number_unsigned() || dimension.get<uint64_t>() > uint64_t{INT64_MAX}) {
      fail("{}: tensor {} has invalid shape {}: expected non-negative integers", file, name, shape.dump());
    }
    const uint64_t size = dimension.get<uint64_t>();
    entry.shape.push_back(static_cast<int64_t>(size));
    overflow = overflow || __builtin_mul_overflow(elements, size, &elements);
  }
  uint64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(elements, uint64_t{dtype_size(entry.dtype)}, &bytes);

  const json& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    fail("{}: tensor {} has invalid data_offsets {}: expected [begin, end]", file, name, offsets.dump());
  }
  entry.begin = read_offset(offsets[0], file, name);
  entry.end = read_offset(offsets[1], file, name);
  if (entry.end < entry.begin) {
    fail("{}: tensor {} has data_offsets [{}, {}] whose end precedes its begin", file, name, entry.begin,
         entry.end);
  }
  if (overflow || bytes != entry.end - entry.begin) {
    fail("{}: tensor {} of shape {} and dtype {} needs {} bytes, but its data_offsets [{}, {}] span {} bytes", file,
         name, shape_text(entry.shape), dtype_name(entry.dtype), overflow ? std::string("more than 2^64") :
         std::to_string(bytes), entry.begin, entry.end, entry.end - entry.begin);
  }
  return entry;
}

// Checks that the tensors tile the data section exactly, as Hugging Face's
// safetensors library requires. Sorted by offset, each tensor starts where the
// previous one ends, and the last one ends at the end of the file.
void check_layout(std::vector<Entry>& entries, uint64_t data_size, const std::string& file) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t position = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.end > data_size) {
      fail("{}: tensor {} has data_offsets [{}, {}] beyond the data section of {} bytes (the file is truncated or "
           "the header is wrong)",
           file, entry.name, entry.begin, entry.end, data_size);
    }
    if (entry.begin < position) {
      fail("{}: tensor {} at data_offsets [{}, {}] overlaps tensor {} at [{}, {}]", file, entry.name, entry.begin,
           entry.end, previous->name, previous->begin, previous->end);
    }
    if (entry.begin > position) {
      fail("{}: {} bytes of unused data before tensor {} at data_offsets [{}, {}]: tensors must be stored back to "
           "back",
           file, entry.begin - position, entry.name, entry.begin, entry.end);
    }
    position = entry.end;
    previous = &entry;
  }
  if (position != data_size) {
    fail("{}: the tensors cover {} bytes of data but the data section holds {} bytes: the file has trailing bytes "
         "or the header is incomplete",
         file, position, data_size);
  }
}

}  // namespace

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
  }
  return "F32";
}

size_t dtype_size(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

int64_t TensorView::numel() const {
  int64_t count = 1;
  for (const int64_t dimension : shape) count *= dimension;
  return count;
}

void TensorView::to_f32(float* out, int64_t expected) const {
  const int64_t count = numel();
  if (count != expected) {
    fail("tensor {} of shape {} has {} elements, but {} were expected", name, shape_text(shape), count, expected);
  }
  if (n_bytes != static_cast<size_t>(count) * dtype_size(dtype)) {
    fail("tensor {} holds {} bytes, but shape {} with dtype {} needs {}", name, n_bytes, shape_text(shape),
         dtype_name(dtype), static_cast<size_t>(count) * dtype_size(dtype));
  }
  // The data may sit at any byte offset (another writer may not align the
  // header), so elements are read with memcpy, never through a cast pointer.
  const auto* bytes = static_cast<const unsigned char*>(data);
  switch (dtype) {
    case DType::kF32:
      if (count > 0) std::memcpy(out, bytes, static_cast<size_t>(count) * sizeof(float));
      break;
    case DType::kBF16:
#pragma omp parallel for schedule(static) if (count > (1 << 20))
      for (int64_t i = 0; i < count; ++i) {
        uint16_t value;
        std::memcpy(&value, bytes + 2 * i, sizeof(value));
        out[i] = bf16_to_float(value);
      }
      break;
    case DType::kF16:
#pragma omp parallel for schedule(static) if (count > (1 << 20))
      for (int64_t i = 0; i < count; ++i) {
        uint16_t value;
        std::memcpy(&value, bytes + 2 * i, sizeof(value));
        out[i] = f16_to_float(value);
      }
      break;
  }
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string file = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", file, std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", file);
  }
  const uint64_t file_size = static_cast<uint64_t>(status.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail("{}: file is {} bytes, shorter than the 8-byte header size field (truncated or not a safetensors file)",
         file, file_size);
  }
  void* mapping = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) fail("cannot memory-map {}: {}", file, std::strerror(errno));
  mapping_ = mapping;
  mapping_size_ = file_size;

  // From here on the destructor does not run if the constructor throws, so
  // failures unmap before rethrowing.
  try {
    const auto* bytes = static_cast<const char*>(mapping_);
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes, sizeof(header_size));
    if (header_size > file_size - 8) {
      fail("{}: header size field says {} bytes, but only {} bytes follow it (truncated or not a safetensors file)",
           file, header_size, file_size - 8);
    }
    if (header_size > kMaxHeaderBytes) {
      fail("{}: header size {} bytes exceeds the safetensors limit of {} bytes", file, header_size,
           kMaxHeaderBytes);
    }

    const json header = parse_header(bytes + 8, header_size, file);
    const uint64_t data_start = 8 + header_size;
    const uint64_t data_size = file_size - data_start;

    std::vector<Entry> entries;
    for (const auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        if (!value.is_object()) fail("{}: __metadata__ must be an object of strings, found {}", file,
                                     value.type_name());
        for (const auto& [key, text] : value.items()) {
          if (!text.is_string()) {
            fail("{}: __metadata__ value for \"{}\" must be a string, found {}", file, key, text.dump());
          }
          metadata_[key] = text.get<std::string>();
        }
        continue;
      }
      entries.push_back(parse_entry(name, value, file));
    }
    check_layout(entries, data_size, file);

    for (const Entry& entry : entries) {
      TensorView view;
      view.name = entry.name;
      view.dtype = entry.dtype;
      view.shape = entry.shape;
      view.data = bytes + data_start + entry.begin;
      view.n_bytes = static_cast<size_t>(entry.end - entry.begin);
      tensors_.emplace(entry.name, std::move(view));
    }
  } catch (...) {
    ::munmap(mapping_, mapping_size_);
    mapping_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors, DType dtype,
                       const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  const size_t element_size = dtype_size(dtype);

  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    if (tensor.name.empty() || tensor.name == "__metadata__") {
      fail("cannot write {}: invalid tensor name \"{}\"", file, tensor.name);
    }
    if (!names.insert(tensor.name).second) fail("cannot write {}: tensor {} is given twice", file, tensor.name);
    uint64_t elements = 1;
    for (const int64_t dimension : tensor.shape) {
      if (dimension < 0) {
        fail("cannot write {}: tensor {} has a negative dimension in shape {}", file, tensor.name,
             shape_text(tensor.shape));
      }
      elements *= static_cast<uint64_t>(dimension);
    }
    if (elements > 0 && tensor.data == nullptr) fail("cannot write {}: tensor {} has no data", file, tensor.name);
    const uint64_t end = offset + elements * element_size;
    header[tensor.name] = {{"dtype", dtype_name(dtype)}, {"shape", tensor.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }

  // Pads the header with spaces so the data starts at a multiple of 8 bytes, as
  // Hugging Face's writer does. Readers can then use F32 data in place.
  std::string text = header.empty() ? std::string("{}") : header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  write_file_atomic(path, [&](std::FILE* stream) {
    const auto put = [&](const void* data, size_t size) {
      if (size > 0 && std::fwrite(data, 1, size, stream) != size) {
        fail("writing {} failed: {} (is the disk full?)", file, std::strerror(errno));
      }
    };
    const uint64_t header_size = text.size();
    put(&header_size, sizeof(header_size));
    put(text.data(), text.size());

    constexpr size_t kChunk = size_t{1} << 16;
    std::vector<uint16_t> converted;
    for (const TensorToWrite& tensor : tensors) {
      size_t count = 1;
      for (const int64_t dimension : tensor.shape) count *= static_cast<size_t>(dimension);
      if (dtype == DType::kF32) {
        put(tensor.data, count * sizeof(float));
        continue;
      }
      for (size_t start = 0; start < count; start += kChunk) {
        const size_t n = std::min(kChunk, count - start);
        converted.resize(n);
        for (size_t i = 0; i < n; ++i) {
          const float value = tensor.data[start + i];
          converted[i] = dtype == DType::kBF16 ? float_to_bf16(value) : float_to_f16(value);
        }
        put(converted.data(), n * sizeof(uint16_t));
      }
    }
  });
}

}  // namespace ropepp
