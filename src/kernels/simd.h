// Run-time choice between the instruction-set builds of a kernel.
//
// Every file named *.simd.cpp in src/kernels is compiled three times, inside
// namespace ropepp::simd_avx512, ropepp::simd_avx2 and ropepp::simd_scalar
// (the macro ROPEPP_SIMD_NS names the current one). A kernel declares its
// entry point in all three namespaces with ROPEPP_SIMD_DECLARE and calls the
// build for the active target through ROPEPP_SIMD_SELECT:
//
//   ROPEPP_SIMD_DECLARE(void, softmax_rows, (float* x, int64_t n))
//   ...
//   ROPEPP_SIMD_SELECT(softmax_rows)(x, n);
//
// The active target is the widest one cpu_features() reports (which the
// environment variable ROPEPP_SIMD=scalar|avx2 caps once per process), unless
// a ScopedSimdTarget forces a narrower one, as tests do to run every build.
#pragma once

#include <atomic>
#include <string>

#include "core/cpu.h"
#include "core/error.h"

namespace ropepp {

enum class SimdTarget { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

inline const char* simd_target_name(SimdTarget target) {
  switch (target) {
    case SimdTarget::kScalar: return "scalar";
    case SimdTarget::kAvx2: return "avx2";
    case SimdTarget::kAvx512: return "avx512";
  }
  return "scalar";
}

// Parses "scalar", "avx2" or "avx512".
inline SimdTarget parse_simd_target(const std::string& name) {
  if (name == "scalar") return SimdTarget::kScalar;
  if (name == "avx2") return SimdTarget::kAvx2;
  if (name == "avx512") return SimdTarget::kAvx512;
  fail("invalid SIMD target '{}': expected scalar, avx2 or avx512", name);
}

// The widest target this CPU runs, after the ROPEPP_SIMD cap.
inline SimdTarget best_simd_target() {
  const CpuFeatures& features = cpu_features();
  if (features.avx512) return SimdTarget::kAvx512;
  if (features.avx2_fma) return SimdTarget::kAvx2;
  return SimdTarget::kScalar;
}

// True when the CPU (after the ROPEPP_SIMD cap) can run code built for target.
inline bool simd_target_supported(SimdTarget target) {
  return static_cast<int>(target) <= static_cast<int>(best_simd_target());
}

namespace simd_detail {
// The SimdTarget value set by ScopedSimdTarget, or -1 when none is set.
inline std::atomic<int> forced_target{-1};
}  // namespace simd_detail

// The target kernels dispatch to now.
inline SimdTarget active_simd_target() {
  const int forced = simd_detail::forced_target.load(std::memory_order_relaxed);
  return forced >= 0 ? static_cast<SimdTarget>(forced) : best_simd_target();
}

// Forces the active target for its lifetime (a test hook). Throws ropepp::Error
// when this CPU cannot run the target. The override is process-wide, so it is
// not meant for concurrent use from several threads.
class ScopedSimdTarget {
 public:
  explicit ScopedSimdTarget(SimdTarget target) : previous_(simd_detail::forced_target.load()) {
    ROPEPP_CHECK(simd_target_supported(target), "SIMD target {} is not supported by this CPU (best: {})",
                 simd_target_name(target), simd_target_name(best_simd_target()));
    simd_detail::forced_target.store(static_cast<int>(target));
  }
  ~ScopedSimdTarget() { simd_detail::forced_target.store(previous_); }
  ScopedSimdTarget(const ScopedSimdTarget&) = delete;
  ScopedSimdTarget& operator=(const ScopedSimdTarget&) = delete;

 private:
  int previous_;
};

// Returns the function built for the active target.
template <typename Function>
Function simd_select(Function avx512, Function avx2, Function scalar) {
  switch (active_simd_target()) {
    case SimdTarget::kAvx512: return avx512;
    case SimdTarget::kAvx2: return avx2;
    case SimdTarget::kScalar: return scalar;
  }
  return scalar;
}

}  // namespace ropepp

// Declares a function in each of the three instruction-set namespaces. Use at
// namespace ropepp scope; params is the parenthesised parameter list.
#define ROPEPP_SIMD_DECLARE(return_type, name, params) \
  namespace simd_avx512 {                              \
  return_type name params;                             \
  }                                                    \
  namespace simd_avx2 {                                \
  return_type name params;                             \
  }                                                    \
  namespace simd_scalar {                              \
  return_type name params;                             \
  }

// The build of ropepp::name for the active target, as a function pointer.
#define ROPEPP_SIMD_SELECT(name) \
  ::ropepp::simd_select(&::ropepp::simd_avx512::name, &::ropepp::simd_avx2::name, &::ropepp::simd_scalar::name)
