// A Llama-style model (RoPE, RoPE++EH or RoPE++EC) with its parameters,
// gradients and the activations its backward pass needs, all in T (float for
// training, double for gradient checks). Parameters use the layout and names of
// model/weights.h (one flat buffer in Hugging Face order), so the f32 store
// converts to and from a Weights object by plain copies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "kernels/rope.h"
#include "model/weights.h"
#include "train/layers.h"

namespace ropepp::train {

// A batch of packed token sequences, all [n_sequences * seq_len] row-major.
struct TokenBatch {
  int64_t n_sequences = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;    // next token of the same document, or -1 (not scored)
  std::vector<int32_t> positions;  // restart at 0 at each document start
  std::vector<int32_t> segments;   // document index within the sequence; attention stays inside one

  int64_t n_tokens() const { return n_sequences * seq_len; }
};

// Head size of a config: head_dim, or hidden_size / num_attention_heads when 0.
int resolved_head_dim(const ModelConfig& config);

// Rotary parameters of a config (rope_theta, head size and position scaling).
RopeParams rope_params_of(const ModelConfig& config);

template <typename T>
class TrainModel {
 public:
  // Throws ropepp::Error when the config does not describe a valid model.
  TrainModel(const ModelConfig& config, MatmulPrecision precision = MatmulPrecision::kF32);

  const ModelConfig& config() const { return config_; }
  const HeadLayout& layout() const { return layout_; }
  const std::vector<ParameterInfo>& parameters() const { return parameters_; }
  const ParameterInfo& parameter(const std::string& name) const;
  int64_t n_parameters() const { return static_cast<int64_t>(params_.size()); }

  T* params() { return params_.data(); }
  const T* params() const { return params_.data(); }
  T* grads() { return grads_.data(); }
  const T* grads() const { return grads_.data(); }

  void set_precision(MatmulPrecision precision) { precision_ = precision; }

  // Llama initialisation: N(0, 0.02) for embeddings and projections, 1 for
  // norms, drawn from counter-based random numbers (independent of threads).
  void init_weights(uint64_t seed);

  void zero_grad();

  // Runs the model and the fused cross-entropy over the batch. With
  // grad_scale != 0 it prepares backward() for the gradient of
  // grad_scale * loss_sum. Throws ropepp::Error on a token id outside the
  // vocabulary.
  CrossEntropySums forward(const TokenBatch& batch, double grad_scale);

  // Accumulates the gradients of the last forward(batch, grad_scale != 0).
  void backward();

 private:
  struct LayerWeights {
    const ParameterInfo *input_norm, *q, *k, *v, *o, *post_norm, *gate, *up, *down;
  };
  struct LayerActivations {
    std::vector<T> ln1, rstd1, q, k, v, att, lse, mid, ln2, rstd2, gate, up, h;
  };

  void add_parameter(const std::string& name, std::vector<int64_t> shape, bool is_norm);
  void allocate_activations(int64_t n_sequences, int64_t seq_len);
  T* param(const ParameterInfo* info) { return params_.data() + info->offset; }
  T* grad(const ParameterInfo* info) { return grads_.data() + info->offset; }

  ModelConfig config_;
  HeadLayout layout_;
  std::unique_ptr<RopeTable> rope_;
  MatmulPrecision precision_;
  int64_t hidden_ = 0, intermediate_ = 0, q_width_ = 0, kv_width_ = 0, att_width_ = 0, vocab_ = 0;

  std::vector<ParameterInfo> parameters_;
  std::vector<T> params_, grads_;
  const ParameterInfo *embedding_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  std::vector<LayerWeights> layer_weights_;

  // Saved by forward for backward.
  const TokenBatch* batch_ = nullptr;
  int64_t n_sequences_ = 0, seq_len_ = 0;
  std::vector<std::vector<T>> residual_;  // [layers + 1][N, C]: input of each layer, then the final one
  std::vector<LayerActivations> activations_;
  std::vector<T> final_norm_out_, final_rstd_, d_final_norm_out_, logits_;
  bool backward_ready_ = false;

  // Backward scratch.
  std::vector<T> d_residual_, d_norm_, d_x_, d_q_, d_k_, d_v_, d_att_, d_gate_, d_up_, d_h_;
};

extern template class TrainModel<float>;
extern template class TrainModel<double>;

}  // namespace ropepp::train
