// Instruction-set features of the running CPU, read once through CPUID.
#pragma once

#include <string>

namespace ropepp {

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512 = false;       // F, BW, DQ and VL together
  bool avx512_bf16 = false;  // native bf16 dot products
};

// Returns the features of this CPU. ROPEPP_SIMD=scalar|avx2|avx512 caps them,
// so tests can force every code path on one machine.
const CpuFeatures& cpu_features();

// Names the widest instruction set the kernels will use: "avx512", "avx2" or "scalar".
std::string simd_target_name();

}  // namespace ropepp
