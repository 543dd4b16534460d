// Characteristic curves of RoPE's real and imaginary attention scores.
//
// For query and key contents that agree (q~_n conj(k~_n) real and positive),
// the real and imaginary scores at distance dt = t - s are, per unit of
// content energy,
//
//   c_re(dt) = m^2 (2/d) sum_n cos(inv_freq[n] dt)
//   c_im(dt) = m^2 (2/d) sum_n sin(inv_freq[n] dt)
//
// with n = 0 .. d/2-1 and m the YaRN magnitude (1 otherwise). With the plain
// RoPE frequencies inv_freq[n] = rope_theta^(-2n/d) these are the cosine- and
// sine-integral-like curves of the RoPE++ paper: c_re decays quickly with dt,
// c_im rises to a plateau and stays there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "kernels/rope.h"

namespace ropepp::eval {

struct CharacteristicCurves {
  std::vector<int64_t> distances;
  std::vector<double> closed_real;  // c_re(dt)
  std::vector<double> closed_imaginary;
  // Empirical counterparts: mean score / (correlation * d) over random q, k;
  // empty when no samples were requested.
  std::vector<double> empirical_real;
  std::vector<double> empirical_imaginary;
  // Standard error of each empirical mean, same normalisation.
  std::vector<double> empirical_real_stderr;
  std::vector<double> empirical_imaginary_stderr;
};

struct CharacteristicOptions {
  RopeParams rope;                  // head_dim, rope_theta and scaling
  std::vector<int64_t> distances;   // dt values, each >= 0
  int64_t samples = 0;              // random (q, k) pairs per distance; 0 skips the empirical curves
  // Correlation rho of each key component with the query component:
  // k = rho q + sqrt(1 - rho^2) e with q, e ~ N(0, I). Independent q and k
  // (rho 0) have zero mean score at every distance, so rho must be > 0.
  double correlation = 1.0;
  uint64_t seed = 0;
};

// Evenly spaced distances 0, step, 2 step, ... up to max_distance (inclusive).
std::vector<int64_t> linear_distances(int64_t max_distance, int64_t count);

// Computes the closed forms and, with samples > 0, the empirical means from
// random Gaussian q and k rotated by the kernels' rope_rotate at key position s
// (random in [0, 4096)) and query position s + dt; the imaginary query is
// -rotate_half of the rotated query. Throws ropepp::Error on invalid options.
CharacteristicCurves characteristic_curves(const CharacteristicOptions& options);

// Writes distance,c_re,c_im[,empirical columns] as CSV.
void write_characteristic_csv(const std::filesystem::path& path, const CharacteristicCurves& curves);

// Plots the closed forms (and the empirical means when present) against dt.
void write_characteristic_plot(const std::filesystem::path& path, const CharacteristicCurves& curves,
                               const RopeParams& rope);

}  // namespace ropepp::eval
