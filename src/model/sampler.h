// Choosing the next token from logits: greedy, or sampling with temperature,
// top-k and top-p (nucleus) filtering from a seeded generator.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace ropepp {

struct SamplerOptions {
  bool greedy = false;       // argmax; also selected by temperature 0
  double temperature = 1.0;  // logits are divided by it before the softmax
  int top_k = 0;             // keep the k most likely tokens; 0 keeps all
  double top_p = 1.0;        // keep the smallest set whose probability reaches p; 1 keeps all
  uint64_t seed = 0;

  // Throws ropepp::Error on a negative temperature or top_k, or top_p outside (0, 1].
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);

  // Returns the chosen token id in [0, vocab). Ties in greedy mode go to the
  // lowest id. Reuses internal buffers, so it allocates only on first use.
  int32_t sample(const float* logits, int64_t vocab);

  const SamplerOptions& options() const { return options_; }

 private:
  SamplerOptions options_;
  Rng rng_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace ropepp
