#include "train/train_model.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace ropepp::train {

int resolved_head_dim(const ModelConfig& config) {
  if (config.head_dim > 0) return config.head_dim;
  ROPEPP_CHECK(config.num_attention_heads > 0 && config.hidden_size % config.num_attention_heads == 0,
               "hidden_size {} is not a multiple of num_attention_heads {}: set head_dim explicitly",
               config.hidden_size, config.num_attention_heads);
  return config.hidden_size / config.num_attention_heads;
}

RopeParams rope_params_of(const ModelConfig& config) {
  RopeParams params;
  params.head_dim = resolved_head_dim(config);
  params.theta = config.rope_theta;
  params.scaling = config.rope_scaling;
  return params;
}

template <typename T>
TrainModel<T>::TrainModel(const ModelConfig& config, MatmulPrecision precision)
    : config_(config), precision_(precision) {
  ROPEPP_CHECK(config.vocab_size > 0, "invalid vocab_size {}: expected > 0", config.vocab_size);
  ROPEPP_CHECK(config.hidden_size > 0, "invalid hidden_size {}: expected > 0", config.hidden_size);
  ROPEPP_CHECK(config.intermediate_size > 0, "invalid intermediate_size {}: expected > 0", config.intermediate_size);
  ROPEPP_CHECK(config.num_hidden_layers > 0, "invalid num_hidden_layers {}: expected > 0", config.num_hidden_layers);
  config_.head_dim = resolved_head_dim(config);
  layout_ = HeadLayout::from_config(config.variant, config.num_attention_heads, config.num_key_value_heads,
                                    config_.head_dim);
  rope_ = std::make_unique<RopeTable>(rope_params_of(config_));

  hidden_ = config.hidden_size;
  intermediate_ = config.intermediate_size;
  vocab_ = config.vocab_size;
  q_width_ = static_cast<int64_t>(layout_.n_query_heads) * layout_.head_dim;
  kv_width_ = static_cast<int64_t>(layout_.n_kv_heads) * layout_.head_dim;
  att_width_ = static_cast<int64_t>(layout_.n_attention_heads()) * layout_.head_dim;

  // Parameters in Hugging Face order and names.
  add_parameter("model.embed_tokens.weight", {vocab_, hidden_}, false);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    add_parameter(prefix + "input_layernorm.weight", {hidden_}, true);
    add_parameter(prefix + "self_attn.q_proj.weight", {q_width_, hidden_}, false);
    add_parameter(prefix + "self_attn.k_proj.weight", {kv_width_, hidden_}, false);
    add_parameter(prefix + "self_attn.v_proj.weight", {kv_width_, hidden_}, false);
    add_parameter(prefix + "self_attn.o_proj.weight", {hidden_, att_width_}, false);
    add_parameter(prefix + "post_attention_layernorm.weight", {hidden_}, true);
    add_parameter(prefix + "mlp.gate_proj.weight", {intermediate_, hidden_}, false);
    add_parameter(prefix + "mlp.up_proj.weight", {intermediate_, hidden_}, false);
    add_parameter(prefix + "mlp.down_proj.weight", {hidden_, intermediate_}, false);
  }
  add_parameter("model.norm.weight", {hidden_}, true);
  if (!config.tie_word_embeddings) add_parameter("lm_head.weight", {vocab_, hidden_}, false);

  params_.assign(static_cast<size_t>(parameters_.back().offset + parameters_.back().numel), T(0));
  grads_.assign(params_.size(), T(0));

  // Pointers into parameters_ are taken only now that it no longer grows.
  embedding_ = &parameter("model.embed_tokens.weight");
  final_norm_ = &parameter("model.norm.weight");
  lm_head_ = config.tie_word_embeddings ? embedding_ : &parameter("lm_head.weight");
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    layer_weights_.push_back({&parameter(prefix + "input_layernorm.weight"),
                              &parameter(prefix + "self_attn.q_proj.weight"),
                              &parameter(prefix + "self_attn.k_proj.weight"),
                              &parameter(prefix + "self_attn.v_proj.weight"),
                              &parameter(prefix + "self_attn.o_proj.weight"),
                              &parameter(prefix + "post_attention_layernorm.weight"),
                              &parameter(prefix + "mlp.gate_proj.weight"), &parameter(prefix + "mlp.up_proj.weight"),
                              &parameter(prefix + "mlp.down_proj.weight")});
  }
}

template <typename T>
void TrainModel<T>::add_parameter(const std::string& name, std::vector<int64_t> shape, bool is_norm) {
  ParameterInfo info;
  info.name = name;
  info.numel = 1;
  for (int64_t extent : shape) info.numel *= extent;
  info.shape = std::move(shape);
  info.offset = parameters_.empty() ? 0 : parameters_.back().offset + parameters_.back().numel;
  info.is_norm = is_norm;
  parameters_.push_back(std::move(info));
}

template <typename T>
const ParameterInfo& TrainModel<T>::parameter(const std::string& name) const {
  for (const ParameterInfo& info : parameters_) {
    if (info.name == name) return info;
  }
  fail("the model has no parameter named '{}'", name);
}

template <typename T>
void TrainModel<T>::init_weights(uint64_t seed) {
  constexpr double kStddev = 0.02;
  for (size_t p = 0; p < parameters_.size(); ++p) {
    const ParameterInfo& info = parameters_[p];
    T* data = params_.data() + info.offset;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < info.numel; ++i) {
      data[i] = info.is_norm ? T(1) : static_cast<T>(kStddev * gaussian_at(seed, p, static_cast<uint64_t>(i)));
    }
  }
}

template <typename T>
void TrainModel<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
void TrainModel<T>::allocate_activations(int64_t n_sequences, int64_t seq_len) {
  if (n_sequences == n_sequences_ && seq_len == seq_len_) return;
  n_sequences_ = n_sequences;
  seq_len_ = seq_len;
  const auto n = static_cast<size_t>(n_sequences * seq_len);
  const auto c = static_cast<size_t>(hidden_), i = static_cast<size_t>(intermediate_);
  const auto heads = static_cast<size_t>(layout_.n_attention_heads());
  residual_.assign(static_cast<size_t>(config_.num_hidden_layers) + 1, std::vector<T>(n * c));
  activations_.resize(static_cast<size_t>(config_.num_hidden_layers));
  for (LayerActivations& a : activations_) {
    a.ln1.resize(n * c);
    a.rstd1.resize(n);
    a.q.resize(n * static_cast<size_t>(q_width_));
    a.k.resize(n * static_cast<size_t>(kv_width_));
    a.v.resize(n * static_cast<size_t>(kv_width_));
    a.att.resize(n * static_cast<size_t>(att_width_));
    a.lse.resize(n * heads);
    a.mid.resize(n * c);
    a.ln2.resize(n * c);
    a.rstd2.resize(n);
    a.gate.resize(n * i);
    a.up.resize(n * i);
    a.h.resize(n * i);
  }
  final_norm_out_.resize(n * c);
  final_rstd_.resize(n);
  d_final_norm_out_.resize(n * c);
  // About 16 MB of logits per chunk, at least one row.
  const int64_t chunk_rows = std::clamp<int64_t>((int64_t{4} << 20) / vocab_, 1, static_cast<int64_t>(n));
  logits_.resize(static_cast<size_t>(chunk_rows * vocab_));

  d_residual_.resize(n * c);
  d_norm_.resize(n * c);
  d_x_.resize(n * c);
  d_q_.resize(n * static_cast<size_t>(q_width_));
  d_k_.resize(n * static_cast<size_t>(kv_width_));
  d_v_.resize(n * static_cast<size_t>(kv_width_));
  d_att_.resize(n * static_cast<size_t>(att_width_));
  d_gate_.resize(n * i);
  d_up_.resize(n * i);
  d_h_.resize(n * i);
}

template <typename T>
CrossEntropySums TrainModel<T>::forward(const TokenBatch& batch, double grad_scale) {
  const int64_t n = batch.n_tokens();
  ROPEPP_CHECK(n > 0 && batch.tokens.size() == static_cast<size_t>(n) && batch.targets.size() == batch.tokens.size() &&
                   batch.positions.size() == batch.tokens.size() &&
                   (batch.segments.empty() || batch.segments.size() == batch.tokens.size()),
               "inconsistent batch: {} sequences of {} tokens but {} tokens, {} targets, {} positions, {} segments",
               batch.n_sequences, batch.seq_len, batch.tokens.size(), batch.targets.size(), batch.positions.size(),
               batch.segments.size());
  for (int64_t t = 0; t < n; ++t) {
    ROPEPP_CHECK(batch.tokens[t] >= 0 && batch.tokens[t] < vocab_ && batch.targets[t] < vocab_,
                 "token id {} (target {}) at batch index {} is outside the vocabulary of {} tokens: the data was "
                 "tokenized for a larger vocabulary; re-tokenize it or raise vocab_size",
                 batch.tokens[t], batch.targets[t], t, vocab_);
  }
  allocate_activations(batch.n_sequences, batch.seq_len);
  batch_ = &batch;
  const int32_t* segments = batch.segments.empty() ? nullptr : batch.segments.data();
  const int64_t c = hidden_;
  const double eps = config_.rms_norm_eps;

  embedding_forward(batch.tokens.data(), n, param(embedding_), c, residual_[0].data());
  for (size_t l = 0; l < layer_weights_.size(); ++l) {
    const LayerWeights& w = layer_weights_[l];
    LayerActivations& a = activations_[l];
    const T* x = residual_[l].data();

    // Attention block: mid = x + o_proj(attention(rmsnorm(x))).
    rmsnorm_forward(x, param(w.input_norm), n, c, eps, a.ln1.data(), a.rstd1.data());
    linear_forward(a.ln1.data(), param(w.q), n, c, q_width_, a.q.data(), precision_);
    linear_forward(a.ln1.data(), param(w.k), n, c, kv_width_, a.k.data(), precision_);
    linear_forward(a.ln1.data(), param(w.v), n, c, kv_width_, a.v.data(), precision_);
    attention_layer_forward(layout_, *rope_, batch.n_sequences, batch.seq_len, batch.positions.data(), segments,
                            a.q.data(), a.k.data(), a.v.data(), a.att.data(), a.lse.data());
    std::copy(x, x + n * c, a.mid.data());
    matmul(false, true, n, c, att_width_, T(1), a.att.data(), att_width_, param(w.o), att_width_, T(1), a.mid.data(), c,
         precision_);

    // MLP block: out = mid + down_proj(silu(gate_proj(h)) * up_proj(h)), h = rmsnorm(mid).
    rmsnorm_forward(a.mid.data(), param(w.post_norm), n, c, eps, a.ln2.data(), a.rstd2.data());
    linear_forward(a.ln2.data(), param(w.gate), n, c, intermediate_, a.gate.data(), precision_);
    linear_forward(a.ln2.data(), param(w.up), n, c, intermediate_, a.up.data(), precision_);
    swiglu_forward(a.gate.data(), a.up.data(), n * intermediate_, a.h.data());
    T* out = residual_[l + 1].data();
    std::copy(a.mid.data(), a.mid.data() + n * c, out);
    matmul(false, true, n, c, intermediate_, T(1), a.h.data(), intermediate_, param(w.down), intermediate_, T(1), out, c,
         precision_);
  }

  rmsnorm_forward(residual_.back().data(), param(final_norm_), n, c, eps, final_norm_out_.data(), final_rstd_.data());
  const int64_t chunk_rows = static_cast<int64_t>(logits_.size()) / vocab_;
  const CrossEntropySums sums = lm_head_cross_entropy(
      final_norm_out_.data(), param(lm_head_), batch.targets.data(), n, c, vocab_, grad_scale,
      d_final_norm_out_.data(), grad(lm_head_), logits_.data(), chunk_rows, precision_);
  backward_ready_ = grad_scale != 0.0;
  return sums;
}

template <typename T>
void TrainModel<T>::backward() {
  ROPEPP_CHECK(backward_ready_, "backward() needs a preceding forward() with a non-zero grad_scale");
  backward_ready_ = false;
  const TokenBatch& batch = *batch_;
  const int32_t* segments = batch.segments.empty() ? nullptr : batch.segments.data();
  const int64_t n = batch.n_tokens(), c = hidden_;

  // d_residual_ carries dloss/d(residual stream) down through the layers.
  rmsnorm_backward(residual_.back().data(), param(final_norm_), final_rstd_.data(), d_final_norm_out_.data(), n, c,
                   d_residual_.data(), grad(final_norm_));

  for (size_t l = layer_weights_.size(); l-- > 0;) {
    const LayerWeights& w = layer_weights_[l];
    LayerActivations& a = activations_[l];

    // out = mid + down(h): dh = dout * W_down, dW_down += dout^T h.
    linear_backward(a.h.data(), param(w.down), d_residual_.data(), n, intermediate_, c, d_h_.data(), false,
                    grad(w.down), precision_);
    swiglu_backward(a.gate.data(), a.up.data(), d_h_.data(), n * intermediate_, d_gate_.data(), d_up_.data());
    linear_backward(a.ln2.data(), param(w.gate), d_gate_.data(), n, c, intermediate_, d_norm_.data(), false,
                    grad(w.gate), precision_);
    linear_backward(a.ln2.data(), param(w.up), d_up_.data(), n, c, intermediate_, d_norm_.data(), true, grad(w.up),
                    precision_);
    rmsnorm_backward(a.mid.data(), param(w.post_norm), a.rstd2.data(), d_norm_.data(), n, c, d_x_.data(),
                     grad(w.post_norm));
    for (int64_t i = 0; i < n * c; ++i) d_residual_[i] += d_x_[i];

    // mid = x + o_proj(att).
    linear_backward(a.att.data(), param(w.o), d_residual_.data(), n, att_width_, c, d_att_.data(), false, grad(w.o),
                    precision_);
    attention_layer_backward(layout_, *rope_, batch.n_sequences, batch.seq_len, batch.positions.data(), segments,
                             a.q.data(), a.k.data(), a.v.data(), a.att.data(), a.lse.data(), d_att_.data(),
                             d_q_.data(), d_k_.data(), d_v_.data());
    linear_backward(a.ln1.data(), param(w.q), d_q_.data(), n, c, q_width_, d_norm_.data(), false, grad(w.q),
                    precision_);
    linear_backward(a.ln1.data(), param(w.k), d_k_.data(), n, c, kv_width_, d_norm_.data(), true, grad(w.k),
                    precision_);
    linear_backward(a.ln1.data(), param(w.v), d_v_.data(), n, c, kv_width_, d_norm_.data(), true, grad(w.v),
                    precision_);
    rmsnorm_backward(residual_[l].data(), param(w.input_norm), a.rstd1.data(), d_norm_.data(), n, c, d_x_.data(),
                     grad(w.input_norm));
    for (int64_t i = 0; i < n * c; ++i) d_residual_[i] += d_x_[i];
  }

  embedding_backward(batch.tokens.data(), n, d_residual_.data(), c, grad(embedding_));
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace ropepp::train
