// Timing of whole training steps (forward, backward, clipping, AdamW) on
// random tokens, for `ropepp bench train`.
#pragma once

#include <cstdint>

#include "io/model_config.h"
#include "train/gemm.h"

namespace ropepp::train {

struct StepTiming {
  int64_t parameters = 0;
  int64_t tokens_per_step = 0;
  double step_seconds = 0.0;  // median over the timed steps
  double tokens_per_second = 0.0;
  double flops_per_token = 0.0;  // training_flops_per_token()
};

// Runs one warm-up step and `steps` timed steps of n_sequences sequences of
// seq_len random tokens (one document each) and returns the median step.
StepTiming time_training_steps(const ModelConfig& config, int64_t n_sequences, int64_t seq_len,
                               MatmulPrecision precision, int steps);

}  // namespace ropepp::train
