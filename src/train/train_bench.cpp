#include "train/train_bench.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/rng.h"
#include "train/optimizer.h"
#include "train/train_model.h"
#include "train/trainer.h"

namespace ropepp::train {

StepTiming time_training_steps(const ModelConfig& config, int64_t n_sequences, int64_t seq_len,
                               MatmulPrecision precision, int steps) {
  TrainModel<float> model(config, precision);
  model.init_weights(1);
  AdamW optimizer(AdamWConfig{}, model.parameters());

  TokenBatch batch;
  batch.n_sequences = n_sequences;
  batch.seq_len = seq_len;
  Rng rng(7);
  for (int64_t i = 0; i < n_sequences * seq_len; ++i) {
    batch.tokens.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(config.vocab_size))));
    batch.positions.push_back(static_cast<int32_t>(i % seq_len));
    batch.segments.push_back(0);
  }
  batch.targets.assign(batch.tokens.begin() + 1, batch.tokens.end());
  batch.targets.push_back(-1);

  std::vector<double> times;
  for (int step = 0; step <= steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    model.zero_grad();
    model.forward(batch, 1.0 / static_cast<double>(batch.n_tokens()));
    model.backward();
    const double norm = gradient_norm(model.grads(), model.n_parameters());
    clip_gradients(model.grads(), model.n_parameters(), norm, 1.0);
    optimizer.update(model.params(), model.grads(), 1e-4);
    if (step > 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());

  StepTiming timing;
  timing.parameters = model.n_parameters();
  timing.tokens_per_step = batch.n_tokens();
  timing.step_seconds = times[times.size() / 2];
  timing.tokens_per_second = static_cast<double>(timing.tokens_per_step) / timing.step_seconds;
  timing.flops_per_token = training_flops_per_token(config, seq_len);
  return timing;
}

}  // namespace ropepp::train
