#include <cctype>
#include <cmath>
#include <limits>

#include "core/bf16.h"
#include "io/safetensors.h"
#include "io_test_util.h"

// The libFuzzer entry point in fuzz_safetensors.cpp.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace ropepp::testing {
namespace {

std::vector<float> ramp(size_t count, float scale) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = scale * (static_cast<float>(i) - 7.5f) / 3.0f;
  return values;
}

TEST_F(ScratchTest, SafetensorsRoundTripF32) {
  const std::vector<float> a = ramp(12, 1.0f);
  std::vector<float> b = ramp(5, -2.5f);
  b[0] = std::numeric_limits<float>::infinity();
  b[1] = -0.0f;
  b[2] = std::numeric_limits<float>::denorm_min();
  const fs::path path = scratch_ / "t.safetensors";
  write_safetensors(path, {{"a", {3, 4}, a.data()}, {"b", {5}, b.data()}, {"empty", {0, 3}, nullptr}}, DType::kF32);

  const SafetensorsFile file(path);
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const TensorView& view_a = file.tensors().at("a");
  EXPECT_EQ(view_a.dtype, DType::kF32);
  EXPECT_EQ(view_a.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(std::memcmp(view_a.data, a.data(), a.size() * sizeof(float)), 0);
  std::vector<float> out(5);
  file.tensors().at("b").to_f32(out.data(), 5);
  EXPECT_EQ(std::memcmp(out.data(), b.data(), b.size() * sizeof(float)), 0);
  EXPECT_EQ(file.tensors().at("empty").numel(), 0);
  expect_error([&] { view_a.to_f32(out.data(), 5); }, {"tensor a", "12 elements", "5"});
}

TEST_F(ScratchTest, SafetensorsRoundTripHalfTypes) {
  std::vector<float> values = ramp(40, 0.37f);
  values.push_back(65504.0f);
  values.push_back(1e-7f);
  values.push_back(-3.0e38f);
  for (const DType dtype : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const fs::path path = scratch_ / ("t-" + dtype_name(dtype) + ".safetensors");
    write_safetensors(path, {{"w", {static_cast<int64_t>(values.size())}, values.data()}}, dtype);
    const SafetensorsFile file(path);
    const TensorView& view = file.tensors().at("w");
    EXPECT_EQ(view.dtype, dtype);
    EXPECT_EQ(view.n_bytes, values.size() * 2);
    std::vector<float> out(values.size());
    view.to_f32(out.data(), static_cast<int64_t>(out.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      // Each value must come back as the conversion of the original, bit for bit.
      const float expected = dtype == DType::kBF16 ? bf16_to_float(float_to_bf16(values[i]))
                                                   : f16_to_float(float_to_f16(values[i]));
      EXPECT_EQ(std::memcmp(&out[i], &expected, sizeof(float)), 0) << "index " << i << " value " << values[i];
    }
  }
}

TEST_F(ScratchTest, SafetensorsHeaderPaddedToEightBytes) {
  const std::vector<float> a = ramp(3, 1.0f);
  const fs::path path = scratch_ / "t.safetensors";
  write_safetensors(path, {{"abc", {3}, a.data()}}, DType::kF32, {});
  const std::string bytes = read_bytes(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_size + 12);
  const std::string header = bytes.substr(8, header_size);
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            R"({"abc":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})");
}

TEST_F(ScratchTest, SafetensorsReadsForeignLayout) {
  // Entries listed out of offset order, an unpadded header and a BF16 tensor
  // at an odd data position, as another writer might produce.
  const std::string header =
      R"({"second":{"dtype":"F16","shape":[1],"data_offsets":[2,4]},"first":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"__metadata__":{"k":"v"}})";
  std::string data;
  const uint16_t one_bf16 = float_to_bf16(1.0f);
  const uint16_t two_f16 = float_to_f16(2.0f);
  data.append(reinterpret_cast<const char*>(&one_bf16), 2);
  data.append(reinterpret_cast<const char*>(&two_f16), 2);
  write_bytes(scratch_ / "x.safetensors", safetensors_bytes(header + " ", data));
  const SafetensorsFile file(scratch_ / "x.safetensors");
  float value = 0.0f;
  file.tensors().at("first").to_f32(&value, 1);
  EXPECT_EQ(value, 1.0f);
  file.tensors().at("second").to_f32(&value, 1);
  EXPECT_EQ(value, 2.0f);
  EXPECT_EQ(file.metadata().at("k"), "v");
}

TEST_F(ScratchTest, SafetensorsWriterRejectsBadInput) {
  const std::vector<float> a = ramp(4, 1.0f);
  const fs::path path = scratch_ / "w.safetensors";
  expect_error([&] { write_safetensors(path, {{"a", {4}, a.data()}, {"a", {4}, a.data()}}, DType::kF32); },
               {"w.safetensors", "tensor a", "twice"});
  expect_error([&] { write_safetensors(path, {{"a", {-1, 4}, a.data()}}, DType::kF32); }, {"negative"});
  expect_error([&] { write_safetensors(path, {{"a", {4}, nullptr}}, DType::kF32); }, {"no data"});
  EXPECT_FALSE(fs::exists(path));
}

// A hand-made corrupt file and the words its error must contain (besides the file name).
struct CorruptCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> expected;
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string eight(8, '\x01');
  const std::string good_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  return {
      {"empty file", "", {"0 bytes", "8-byte header size"}},
      {"truncated size field", std::string("\x10\x00\x00", 3), {"3 bytes"}},
      {"header size beyond file", safetensors_bytes("{}", "", 1000), {"1000 bytes", "only 2 bytes follow"}},
      {"header size huge", safetensors_bytes("{}", "", int64_t{1} << 62), {"only 2 bytes follow"}},
      {"header cut mid-JSON", safetensors_bytes(R"({"a":{"dtype":"F32")", ""), {"invalid JSON in the"}},
      {"not JSON", safetensors_bytes("hello world!", ""), {"invalid JSON in the"}},
      {"number beyond double", safetensors_bytes(R"({"a":1e99999})", ""), {"invalid JSON in the", "overflow"}},
      {"header not an object", safetensors_bytes("[1,2]", ""), {"expected a JSON object"}},
      {"invalid UTF-8 in name", safetensors_bytes("{\"\xff\":{}}", ""), {"invalid JSON in the"}},
      {"unknown dtype", safetensors_bytes(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", eight),
       {"tensor a", "unknown dtype \"F33\""}},
      {"unsupported dtype", safetensors_bytes(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", eight),
       {"tensor a", "dtype I64", "F32, BF16 or F16"}},
      {"dtype not string", safetensors_bytes(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", eight),
       {"tensor a", "invalid dtype"}},
      {"missing shape", safetensors_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", eight),
       {"tensor a", "no shape"}},
      {"negative dimension", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       {"tensor a", "invalid shape"}},
      {"fractional dimension", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight),
       {"tensor a", "invalid shape"}},
      {"shape size mismatch", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       {"tensor a", "needs 12 bytes", "span 8 bytes"}},
      {"shape overflow",
       safetensors_bytes(
           R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", eight),
       {"tensor a", "more than 2^64"}},
      {"offsets not pair", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight),
       {"tensor a", "data_offsets"}},
      {"negative offset", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[-8,-8]}})", eight),
       {"tensor a", "non-negative"}},
      {"offsets out of range", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
       {"tensor a", "beyond the data section of 8 bytes"}},
      {"offset overflow near 2^64",
       safetensors_bytes(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
           eight),
       {"tensor a"}},
      {"range end before begin", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
       {"tensor a", "end precedes its begin"}},
      {"overlapping ranges",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         eight),
       {"overlaps tensor a"}},
      {"gap between ranges",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       {"4 bytes of unused data before tensor a"}},
      {"trailing bytes", safetensors_bytes("{" + good_entry + "}", eight + "xyz"),
       {"cover 8 bytes", "holds 11 bytes"}},
      {"duplicate tensor", safetensors_bytes("{" + good_entry + "," + good_entry + "}", eight),
       {"\"a\" twice"}},
      {"duplicate field",
       safetensors_bytes(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", eight),
       {"\"dtype\" twice"}},
      {"metadata not strings", safetensors_bytes(R"({"__metadata__":{"step":5}})", ""),
       {"__metadata__", "step", "string"}},
      {"metadata not object", safetensors_bytes(R"({"__metadata__":[1]})", ""), {"__metadata__", "object"}},
      {"entry not object", safetensors_bytes(R"({"a":[1,2]})", ""), {"tensor a", "invalid entry"}},
      {"deep nesting", safetensors_bytes(std::string(5000, '[') + std::string(5000, ']'), ""), {"nested deeper"}},
      {"nested shape", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", eight),
       {"nested deeper"}},
  };
}

TEST_F(ScratchTest, SafetensorsCorruptFilesRejected) {
  for (const CorruptCase& corrupt : corrupt_cases()) {
    SCOPED_TRACE(corrupt.name);
    const fs::path path = scratch_ / "corrupt.safetensors";
    write_bytes(path, corrupt.bytes);
    std::vector<std::string> parts = corrupt.expected;
    try {
      const SafetensorsFile file(path);
      ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      for (const char c : message) {
        EXPECT_TRUE(std::isprint(static_cast<unsigned char>(c))) << "unprintable byte in message: " << message;
      }
      for (const std::string& part : parts) {
        EXPECT_NE(message.find(part), std::string::npos) << "lacks \"" << part << "\": " << message;
      }
    }
  }
}

// Every prefix of a valid file is a truncated file, and flipping any header
// byte makes a damaged one: neither may crash or read out of bounds (run under
// AddressSanitizer to check the latter).
TEST_F(ScratchTest, SafetensorsDamagedFilesNeverCrash) {
  const std::vector<float> a = ramp(6, 1.0f);
  const fs::path good = scratch_ / "good.safetensors";
  write_safetensors(good, {{"a", {2, 3}, a.data()}, {"b", {2}, a.data()}}, DType::kBF16);
  const std::string bytes = read_bytes(good);
  const fs::path path = scratch_ / "damaged.safetensors";

  int rejected = 0;
  for (size_t size = 0; size < bytes.size(); ++size) {
    write_bytes(path, bytes.substr(0, size));
    try {
      const SafetensorsFile file(path);
      ADD_FAILURE() << "a file truncated to " << size << " bytes was accepted";
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_EQ(rejected, static_cast<int>(bytes.size()));

  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    write_bytes(path, damaged);
    try {
      const SafetensorsFile file(path);
      for (const auto& [name, view] : file.tensors()) {
        std::vector<float> out(static_cast<size_t>(view.numel()));
        view.to_f32(out.data(), view.numel());
      }
    } catch (const Error&) {
    }
  }
}

// Runs the fuzz target's entry point on the hand-made corrupt files and on a
// valid one, so the target is exercised in every build.
TEST_F(ScratchTest, SafetensorsFuzzEntryOnCorruptCases) {
  std::vector<std::string> inputs;
  for (const CorruptCase& corrupt : corrupt_cases()) inputs.push_back(corrupt.bytes);
  const std::vector<float> a = ramp(6, 1.0f);
  write_safetensors(scratch_ / "good.safetensors", {{"a", {2, 3}, a.data()}}, DType::kF16);
  inputs.push_back(read_bytes(scratch_ / "good.safetensors"));
  for (const std::string& input : inputs) {
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size()), 0);
  }
}

}  // namespace
}  // namespace ropepp::testing
