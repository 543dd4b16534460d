// The training loop behind `ropepp train`, as a library function so other
// commands (e.g. `ropepp study`) can train models too.
#pragma once

#include <cstdint>
#include <string>

#include "train/train_config.h"

namespace ropepp::train {

struct TrainSummary {
  int64_t steps = 0;          // optimizer steps done in total (including before a resume)
  int64_t tokens = 0;         // training tokens seen in total
  double final_loss = 0.0;    // training loss of the last step (nats per token)
  double final_val_loss = -1.0;  // last validation loss, or -1 when none was computed
  double tokens_per_second = 0.0;  // over the steps of this call
  double mfu = 0.0;               // model FLOPs / time / measured GEMM ceiling, over the steps of this call
  double seconds = 0.0;
  std::string last_checkpoint;    // folder of the final checkpoint
  std::string metrics_file;       // JSON lines, one per step and per validation
};

// Trains as configured: tokenizes (or reuses the cached) data, initialises,
// resumes or loads the model, runs the steps with a progress bar, validates,
// writes checkpoints and a metrics file. Throws ropepp::Error on invalid
// settings or data. A NaN or infinite loss or gradient also throws, with the
// step and the tensor in the message, and nothing is saved for that step.
TrainSummary run(const TrainConfig& config);

// Returns the floating-point operations of one training token: 6 x the
// parameters used in matrix products (embedding lookup and norms excluded),
// plus 6 x layers x attention heads x head_dim x seq_len for causal attention.
// The attention term follows because a query attends to seq_len / 2 keys on average,
// scores and weighted values take 2 x head_dim FLOPs per key each, and the
// backward pass costs twice the forward pass.
double training_flops_per_token(const ModelConfig& config, int64_t seq_len);

}  // namespace ropepp::train
