#include "model/weights.h"

#include <fmt/ranges.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace ropepp {

LayerShapes LayerShapes::from_config(const ModelConfig& config) {
  const HeadLayout layout = config.head_layout();
  LayerShapes shapes;
  shapes.hidden = config.hidden_size;
  shapes.q_rows = static_cast<int64_t>(layout.n_query_heads) * layout.head_dim;
  shapes.kv_rows = static_cast<int64_t>(layout.n_kv_heads) * layout.head_dim;
  shapes.attn_width = static_cast<int64_t>(layout.n_attention_heads()) * layout.head_dim;
  shapes.intermediate = config.intermediate_size;
  return shapes;
}

std::string Weights::layer_tensor_name(int layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix + ".weight";
}

Weights::Weights(const ModelConfig& config) : config_(config) {
  config_.validate("model config");
  const LayerShapes shapes = LayerShapes::from_config(config_);
  const int64_t vocab = config_.vocab_size;
  const int64_t hidden = shapes.hidden;

  int64_t offset = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    ParameterInfo info;
    info.name = name;
    info.shape = std::move(shape);
    info.numel = 1;
    for (int64_t extent : info.shape) info.numel *= extent;
    info.offset = offset;
    info.is_norm = info.shape.size() == 1;
    offset += info.numel;
    index_[name] = parameters_.size();
    parameters_.push_back(std::move(info));
  };

  add("model.embed_tokens.weight", {vocab, hidden});
  for (int i = 0; i < config_.num_hidden_layers; ++i) {
    add(layer_tensor_name(i, "input_layernorm"), {hidden});
    add(layer_tensor_name(i, "self_attn.q_proj"), {shapes.q_rows, hidden});
    add(layer_tensor_name(i, "self_attn.k_proj"), {shapes.kv_rows, hidden});
    add(layer_tensor_name(i, "self_attn.v_proj"), {shapes.kv_rows, hidden});
    add(layer_tensor_name(i, "self_attn.o_proj"), {hidden, shapes.attn_width});
    add(layer_tensor_name(i, "post_attention_layernorm"), {hidden});
    add(layer_tensor_name(i, "mlp.gate_proj"), {shapes.intermediate, hidden});
    add(layer_tensor_name(i, "mlp.up_proj"), {shapes.intermediate, hidden});
    add(layer_tensor_name(i, "mlp.down_proj"), {hidden, shapes.intermediate});
  }
  add("model.norm.weight", {hidden});
  if (config_.tie_word_embeddings) {
    lm_head_name_ = "model.embed_tokens.weight";
  } else {
    add("lm_head.weight", {vocab, hidden});
    lm_head_name_ = "lm_head.weight";
  }
  data_.assign(static_cast<size_t>(offset), 0.0f);
}

Weights Weights::zeros(const ModelConfig& config) { return Weights(config); }

Weights Weights::random(const ModelConfig& config, uint64_t seed, double stddev) {
  Weights weights(config);
  for (size_t t = 0; t < weights.parameters_.size(); ++t) {
    const ParameterInfo& info = weights.parameters_[t];
    float* data = weights.data_.data() + info.offset;
    if (info.is_norm) {
      std::fill(data, data + info.numel, 1.0f);
      continue;
    }
    // One counter-based stream per tensor index, so every value depends only
    // on (seed, tensor, element) and not on the thread split. Box-Muller turns
    // the uniforms of counters 2j and 2j+1 into the normals of elements 2j and
    // 2j+1 (cosine and sine branch), half the transcendental calls of one
    // normal per element.
    const int64_t n_pairs = (info.numel + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n_pairs; ++j) {
      const double u1 = uniform_open(hash_counter(seed, t, static_cast<uint64_t>(2 * j)));
      const double u2 = uniform_open(hash_counter(seed, t, static_cast<uint64_t>(2 * j + 1)));
      const double radius = stddev * std::sqrt(-2.0 * std::log(u1));
      const double angle = 6.283185307179586 * u2;
      data[2 * j] = static_cast<float>(radius * std::cos(angle));
      if (2 * j + 1 < info.numel) data[2 * j + 1] = static_cast<float>(radius * std::sin(angle));
    }
  }
  return weights;
}

Weights Weights::from_checkpoint(const Checkpoint& checkpoint) {
  Weights weights(checkpoint.config());
  for (const ParameterInfo& info : weights.parameters_) {
    ROPEPP_CHECK(checkpoint.has(info.name), "checkpoint {} has no tensor {} (expected shape [{}])",
                 checkpoint.directory().string(), info.name, fmt::join(info.shape, ", "));
    const TensorView& view = checkpoint.tensor(info.name);
    ROPEPP_CHECK(view.shape == info.shape, "checkpoint {}: tensor {} has shape [{}], expected [{}]",
                 checkpoint.directory().string(), info.name, fmt::join(view.shape, ", "),
                 fmt::join(info.shape, ", "));
    view.to_f32(weights.data_.data() + info.offset, info.numel);
  }
  return weights;
}

Weights Weights::load(const std::filesystem::path& directory) {
  const Checkpoint checkpoint(directory);
  return from_checkpoint(checkpoint);
}

void Weights::save(const std::filesystem::path& directory, DType dtype, int64_t max_shard_bytes) const {
  ModelConfig config = config_;
  switch (dtype) {
    case DType::kF32: config.torch_dtype = "float32"; break;
    case DType::kBF16: config.torch_dtype = "bfloat16"; break;
    case DType::kF16: config.torch_dtype = "float16"; break;
  }
  std::vector<TensorToWrite> tensors;
  tensors.reserve(parameters_.size());
  for (const ParameterInfo& info : parameters_) {
    tensors.push_back(TensorToWrite{info.name, info.shape, data_.data() + info.offset});
  }
  write_checkpoint(directory, config, tensors, dtype, max_shard_bytes);
}

const ParameterInfo& Weights::info(const std::string& name) const {
  auto found = index_.find(name);
  ROPEPP_CHECK(found != index_.end(), "the model has no tensor named {}", name);
  return parameters_[found->second];
}

LayerTensors<float> Weights::layer(int index) {
  ROPEPP_CHECK(index >= 0 && index < config_.num_hidden_layers, "layer {} is outside 0..{}", index,
               config_.num_hidden_layers - 1);
  LayerTensors<float> layer;
  layer.input_layernorm = tensor(layer_tensor_name(index, "input_layernorm"));
  layer.q_proj = tensor(layer_tensor_name(index, "self_attn.q_proj"));
  layer.k_proj = tensor(layer_tensor_name(index, "self_attn.k_proj"));
  layer.v_proj = tensor(layer_tensor_name(index, "self_attn.v_proj"));
  layer.o_proj = tensor(layer_tensor_name(index, "self_attn.o_proj"));
  layer.post_attention_layernorm = tensor(layer_tensor_name(index, "post_attention_layernorm"));
  layer.gate_proj = tensor(layer_tensor_name(index, "mlp.gate_proj"));
  layer.up_proj = tensor(layer_tensor_name(index, "mlp.up_proj"));
  layer.down_proj = tensor(layer_tensor_name(index, "mlp.down_proj"));
  return layer;
}

LayerTensors<const float> Weights::layer(int index) const {
  LayerTensors<float> mutable_layer = const_cast<Weights*>(this)->layer(index);
  LayerTensors<const float> layer;
  layer.input_layernorm = mutable_layer.input_layernorm;
  layer.q_proj = mutable_layer.q_proj;
  layer.k_proj = mutable_layer.k_proj;
  layer.v_proj = mutable_layer.v_proj;
  layer.o_proj = mutable_layer.o_proj;
  layer.post_attention_layernorm = mutable_layer.post_attention_layernorm;
  layer.gate_proj = mutable_layer.gate_proj;
  layer.up_proj = mutable_layer.up_proj;
  layer.down_proj = mutable_layer.down_proj;
  return layer;
}

void Weights::enable_bf16() {
  bf16_.resize(data_.size());
  refresh_bf16();
}

void Weights::refresh_bf16() {
  if (bf16_.empty()) return;
  const int64_t n = size();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) bf16_[i] = float_to_bf16(data_[i]);
}

LinearWeight Weights::linear(const std::string& name) const {
  const ParameterInfo& parameter = info(name);
  ROPEPP_CHECK(parameter.shape.size() == 2, "tensor {} is not a matrix", name);
  LinearWeight weight;
  weight.f32 = data_.data() + parameter.offset;
  weight.bf16 = bf16_.empty() ? nullptr : bf16_.data() + parameter.offset;
  weight.out_features = parameter.shape[0];
  weight.in_features = parameter.shape[1];
  return weight;
}

}  // namespace ropepp
