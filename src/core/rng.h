// Counter-based random numbers: the value for (seed, stream, index) is a pure
// function of the three, so results do not depend on thread count or order.
#pragma once

#include <cmath>
#include <cstdint>

namespace ropepp {

// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t hash_counter(uint64_t seed, uint64_t stream, uint64_t index) {
  return mix64(mix64(seed ^ mix64(stream)) ^ index);
}

// Uniform in (0, 1), never exactly 0 or 1.
inline double uniform_open(uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Standard normal sample via Box-Muller from two counter hashes.
inline double gaussian_at(uint64_t seed, uint64_t stream, uint64_t index) {
  const double u1 = uniform_open(hash_counter(seed, stream, 2 * index));
  const double u2 = uniform_open(hash_counter(seed, stream, 2 * index + 1));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A small sequential generator (xoshiro256**) for sampling and shuffling.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    for (int i = 0; i < 4; ++i) state_[i] = mix64(seed + 0x9e3779b97f4a7c15ull * (i + 1));
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  double uniform() { return uniform_open(next()); }

  // Uniform integer in [0, bound).
  uint64_t below(uint64_t bound) { return static_cast<uint64_t>(uniform() * static_cast<double>(bound)) % bound; }

  double gaussian() {
    const double u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  // The full state, for checkpoints that must resume bit-identically.
  const uint64_t* state() const { return state_; }
  void set_state(const uint64_t state[4]) {
    for (int i = 0; i < 4; ++i) state_[i] = state[i];
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace ropepp
