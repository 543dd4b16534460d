#include "kernels/activations.h"
#include "kernels/attention_prefill_vec.h"

namespace ropepp::ROPEPP_SIMD_NS {

void swiglu_span(const float* gate, const float* up, int64_t n, float* out) {
  const vec::Float ones = vec::broadcast(1.0f);
  const vec::Float zeros = vec::broadcast(0.0f);
  int64_t i = 0;
  for (; i + vec::kLanes <= n; i += vec::kLanes) {
    const vec::Float g = vec::load(gate + i);
    // exp(-g) clamps to exp(88) for g < -88, so silu(g) comes out below 1e-35
    // in magnitude where libm's exp overflows and gives -0. A NaN gate stays NaN.
    const vec::Float sigmoid = vec::div(ones, vec::add(ones, vec::exp(vec::sub(zeros, g))));
    vec::store(out + i, vec::mul(vec::mul(g, sigmoid), vec::load(up + i)));
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + vec::exp_scalar(-g)) * up[i];
  }
}

}  // namespace ropepp::ROPEPP_SIMD_NS
