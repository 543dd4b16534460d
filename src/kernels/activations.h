// Elementwise activations of the model's forward pass, vectorised per
// instruction set (kernels/simd.h).
#pragma once

#include <cstdint>

#include "kernels/simd.h"

namespace ropepp {

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)), for i < n, on
// the calling thread. out may alias gate or up. exp has at most 2 ulp of
// error (attention_prefill_vec.h), so results are within a few ulp of the
// libm version.
ROPEPP_SIMD_DECLARE(void, swiglu_span, (const float* gate, const float* up, int64_t n, float* out))

inline void swiglu_span(const float* gate, const float* up, int64_t n, float* out) {
  ROPEPP_SIMD_SELECT(swiglu_span)(gate, up, n, out);
}

}  // namespace ropepp
