// Rotary position tables for RoPE and RoPE++.
//
// Pair layout ("rotate_half", the Hugging Face Llama layout): frequency pair n
// of a head vector x of size d is (x[n], x[n + d/2]), n = 0 .. d/2-1, and
//
//   inv_freq[n]    = rope_theta^(-2n/d), then changed by the position scaling
//   angle[n]       = position * inv_freq[n]
//   rotate_half(x) = [-x[d/2:], x[:d/2]]
//   rotated(x)     = x * cos(angle) + rotate_half(x) * sin(angle)
//
// Angles are computed from the integer position in double precision and only
// then rounded, so precision does not degrade with the position.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ropepp {

// Position scaling, for running a model past its training length.
// The NTK-style extension is a plain change of rope_theta and needs no type.
enum class RopeScalingType {
  kNone,
  kLinear,     // position interpolation: inv_freq / factor
  kYarnPaper,  // the RoPE++ authors' YaRN ramp (see RopeTable)
  kYarnHF,     // Hugging Face transformers' rope_type "yarn"
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // Training context the ramp of both YaRN variants is measured against. The
  // authors' code fixes it at 4096.
  int64_t original_max_position = 4096;
  // Hugging Face YaRN only: the ramp runs between these rotation counts.
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  // Factor on cos and sin for both YaRN variants; 0 selects 0.1 * ln(factor) + 1.
  double attention_factor = 0.0;
};

struct RopeParams {
  int head_dim = 128;
  double theta = 10000.0;  // rope_theta; a larger base is the NTK-style extension
  RopeScaling scaling;
};

// Parses "none", "linear", "yarn-paper" or "yarn-hf"; throws ropepp::Error otherwise.
RopeScalingType parse_rope_scaling_type(const std::string& name);
std::string rope_scaling_type_name(RopeScalingType type);

class RopeTable {
 public:
  // Validates params (even head_dim > 0, theta > 1, factor >= 1) and builds inv_freq.
  explicit RopeTable(const RopeParams& params);

  int head_dim() const { return params_.head_dim; }
  int half_dim() const { return params_.head_dim / 2; }
  const RopeParams& params() const { return params_; }

  // The final frequencies, after scaling, in radians per position.
  const std::vector<double>& inv_freq() const { return inv_freq_; }

  // Factor applied to both cos and sin (1 except for YaRN).
  double magnitude() const { return magnitude_; }

  // Writes magnitude * cos(angle[n]) and magnitude * sin(angle[n]) for n < d/2.
  void cos_sin(int64_t position, double* cos_out, double* sin_out) const;
  void cos_sin(int64_t position, float* cos_out, float* sin_out) const;

 private:
  RopeParams params_;
  std::vector<double> inv_freq_;
  double magnitude_ = 1.0;
};

// Rotates n_tokens x n_heads head vectors in place, x laid out as
// [n_tokens][n_heads][head_dim]; token t uses positions[t].
void rope_rotate(const RopeTable& table, const int32_t* positions, int64_t n_tokens, int n_heads, float* x);

// Applies the transpose of the rotation (its inverse only when the YaRN magnitude
// is 1): turns a gradient with respect to rotated vectors into one with respect
// to the vectors before rotation.
void rope_rotate_inverse(const RopeTable& table, const int32_t* positions, int64_t n_tokens, int n_heads,
                         float* x);

}  // namespace ropepp
