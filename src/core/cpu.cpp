#include "core/cpu.h"

#include <cstdlib>
#include <cstring>

namespace ropepp {
namespace {

CpuFeatures detect_features() {
  CpuFeatures features;
  __builtin_cpu_init();
  features.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  features.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  // GCC 12's __builtin_cpu_supports knows avx512bf16 as a feature name.
  features.avx512_bf16 = features.avx512 && __builtin_cpu_supports("avx512bf16");

  if (const char* cap = std::getenv("ROPEPP_SIMD")) {
    if (std::strcmp(cap, "scalar") == 0) {
      features = CpuFeatures{};
    } else if (std::strcmp(cap, "avx2") == 0) {
      features.avx512 = false;
      features.avx512_bf16 = false;
    }
  }
  return features;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect_features();
  return features;
}

std::string simd_target_name() {
  const CpuFeatures& features = cpu_features();
  if (features.avx512) return "avx512";
  if (features.avx2_fma) return "avx2";
  return "scalar";
}

}  // namespace ropepp
