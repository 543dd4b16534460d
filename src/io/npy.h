// NumPy .npy output (format version 1.0, little-endian float32, C order).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace ropepp {

// Writes data of the given shape to path atomically.
void write_npy_f32(const std::filesystem::path& path, const float* data, const std::vector<int64_t>& shape);

// Reads a float32 .npy file; throws ropepp::Error on any other dtype or layout.
std::vector<float> read_npy_f32(const std::filesystem::path& path, std::vector<int64_t>& shape);

}  // namespace ropepp
