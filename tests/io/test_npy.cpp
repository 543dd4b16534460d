#include <cmath>

#include "io/npy.h"
#include "io_test_util.h"

namespace ropepp::testing {
namespace {

TEST_F(ScratchTest, NpyRoundTripShapes) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {7}, {3, 5}, {2, 0, 4}, {2, 3, 4}};
  for (const auto& shape : shapes) {
    size_t count = 1;
    for (const int64_t dimension : shape) count *= static_cast<size_t>(dimension);
    std::vector<float> values(count);
    for (size_t i = 0; i < count; ++i) values[i] = std::sin(static_cast<float>(i)) * 1e3f;
    const fs::path path = scratch_ / "a.npy";
    write_npy_f32(path, values.data(), shape);

    const std::string bytes = read_bytes(path);
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    EXPECT_EQ((bytes.size() - count * 4) % 64, 0u) << "data must start at a multiple of 64 bytes";

    std::vector<int64_t> read_shape;
    const std::vector<float> read = read_npy_f32(path, read_shape);
    EXPECT_EQ(read_shape, shape);
    ASSERT_EQ(read.size(), values.size());
    if (count > 0) {
      EXPECT_EQ(std::memcmp(read.data(), values.data(), count * 4), 0);
    }
  }
}

TEST_F(ScratchTest, NpyHeaderMatchesNumpy) {
  // The header NumPy 1.x writes for np.save of a float32 array of shape (2, 3).
  const float values[6] = {0, 1, 2, 3, 4, 5};
  write_npy_f32(scratch_ / "a.npy", values, {2, 3});
  const std::string bytes = read_bytes(scratch_ / "a.npy");
  const std::string header = bytes.substr(10, 118);
  EXPECT_EQ(header.substr(0, header.find_last_not_of(" \n") + 1),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  EXPECT_EQ(bytes[127], '\n');
  write_npy_f32(scratch_ / "b.npy", values, {6});
  EXPECT_NE(read_bytes(scratch_ / "b.npy").find("'shape': (6,)"), std::string::npos);
}

std::string npy_with_header(const std::string& dictionary, const std::string& data) {
  std::string header = dictionary;
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  const uint16_t size = static_cast<uint16_t>(header.size());
  return std::string("\x93NUMPY\x01\x00", 8) + std::string(reinterpret_cast<const char*>(&size), 2) + header + data;
}

TEST_F(ScratchTest, NpyReadsOtherKeyOrder) {
  const float value = 2.5f;
  write_bytes(scratch_ / "a.npy", npy_with_header("{'shape': (1,), 'fortran_order': False, 'descr': '<f4'}",
                                                  std::string(reinterpret_cast<const char*>(&value), 4)));
  std::vector<int64_t> shape;
  EXPECT_EQ(read_npy_f32(scratch_ / "a.npy", shape), std::vector<float>{2.5f});
  EXPECT_EQ(shape, std::vector<int64_t>{1});
}

TEST_F(ScratchTest, NpyInvalidFilesRejected) {
  const std::string four(4, '\0');
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"", {"not a .npy file"}},
      {"PK\x03\x04 zip file", {"not a .npy file"}},
      {npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0')),
       {"'<f8'", "float32"}},
      {npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", four), {"Fortran"}},
      {npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", four),
       {"needs 8 bytes", "holds 4"}},
      {npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", four), {"invalid .npy header"}},
      {npy_with_header("{'descr': '<f4', 'shape': (1,), }", four), {"lacks"}},
      {npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", four), {"'x'"}},
      {npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
                       four),
       {"overflows"}},
      {npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,", ""), {"invalid .npy header"}},
      {std::string("\x93NUMPY\x01\x00\xff\x00{}", 12), {"claims 255 bytes"}},
      {std::string("\x93NUMPY\x04\x00\x00\x00", 10), {"version 4.0"}},
  };
  for (const auto& [bytes, parts] : cases) {
    SCOPED_TRACE(bytes.substr(0, 60));
    write_bytes(scratch_ / "bad.npy", bytes);
    std::vector<int64_t> shape;
    try {
      read_npy_f32(scratch_ / "bad.npy", shape);
      ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("bad.npy"), std::string::npos) << message;
      for (const std::string& part : parts) {
        EXPECT_NE(message.find(part), std::string::npos) << "lacks \"" << part << "\": " << message;
      }
    }
  }
}

}  // namespace
}  // namespace ropepp::testing
