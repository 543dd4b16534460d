// Safetensors files: an 8-byte little-endian header size N, N bytes of JSON
// mapping tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets
// relative to the end of the header), an optional "__metadata__" map of
// strings, then the tensor bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ropepp {

enum class DType { kF32, kBF16, kF16 };

std::string dtype_name(DType dtype);  // "F32", "BF16", "F16"
size_t dtype_size(DType dtype);

// A tensor inside a mapped file (or in memory).
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // dtype elements, row-major. Files from other writers may leave it unaligned.
  size_t n_bytes = 0;

  int64_t numel() const;

  // Converts to f32 (row-major). Throws if the size does not match `expected`.
  void to_f32(float* out, int64_t expected) const;
};

// A memory-mapped safetensors file, validated on open: header size within the
// file, JSON well formed, known dtypes, shapes whose element count matches the
// byte range, ranges inside the data section, sorted without overlap or gaps.
// NOTE: truncating the file while it is open makes later reads of the mapping
// fail with SIGBUS; checkpoints must not be rewritten in place while loaded.
class SafetensorsFile {
 public:
  // Throws ropepp::Error naming the file, the tensor and the problem.
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::filesystem::path path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: f32 data converted to `dtype` on write.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

// Writes one safetensors file atomically, tensors in the given order.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors, DType dtype,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace ropepp
