// libFuzzer target for the safetensors reader: every input is opened as a
// file and, when it is accepted, every tensor is converted to f32. The reader
// must reject bad input with ropepp::Error and never crash or read out of
// bounds. Built only with -DROPEPP_FUZZ=ON and clang:
//
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DROPEPP_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_safetensors
//   build-fuzz/fuzz_safetensors -max_total_time=60 CORPUS_DIR
//
// In the gtest program (compiled without the fuzzer) this file only adds the
// entry point, which a test runs on hand-made inputs.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An anonymous in-memory file, so the fuzzer never touches the disk.
  const int fd = ::memfd_create("ropepp-fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, data + written, size - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const ropepp::SafetensorsFile file(path);
    std::vector<float> values;
    for (const auto& [name, view] : file.tensors()) {
      values.resize(static_cast<size_t>(view.numel()));
      view.to_f32(values.data(), view.numel());
    }
  } catch (const ropepp::Error&) {
  }
  ::close(fd);
  return 0;
}
