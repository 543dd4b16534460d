// The parameter store of a Llama / RoPE++ model: every tensor under its
// Hugging Face name, as f32 master data in one contiguous buffer, plus an
// optional bf16 mirror for bf16 matrix products.
//
// The single buffer lets an optimiser run over all parameters as one array and
// a gradient store of the same layout (Weights::zeros) pair up index by index.
// Tensors are laid out in the order of parameter_names(): embedding, then per
// layer input_layernorm, q/k/v/o_proj, post_attention_layernorm,
// gate/up/down_proj, then model.norm and lm_head (absent when tied).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/huge_pages.h"
#include "io/checkpoint.h"
#include "io/model_config.h"

namespace ropepp {

// Name, shape and position of one tensor in the store.
struct ParameterInfo {
  std::string name;
  std::vector<int64_t> shape;  // [out, in] for linear weights, [n] for norms
  int64_t offset = 0;          // elements from the start of the store
  int64_t numel = 0;
  bool is_norm = false;  // RMSNorm gain (1-D), which AdamW setups usually exclude from weight decay
};

// A linear layer's weight [out][in] for y = x W^T, in f32 and optionally bf16.
struct LinearWeight {
  const float* f32 = nullptr;
  const bf16_t* bf16 = nullptr;  // null when the store has no bf16 mirror
  int64_t out_features = 0;
  int64_t in_features = 0;
};

// Pointers to one decoder layer's tensors; T is float or const float.
template <typename T>
struct LayerTensors {
  T* input_layernorm = nullptr;           // [hidden]
  T* q_proj = nullptr;                    // [q_rows, hidden]
  T* k_proj = nullptr;                    // [kv_rows, hidden]
  T* v_proj = nullptr;                    // [kv_rows, hidden]
  T* o_proj = nullptr;                    // [hidden, attention_heads * head_dim]
  T* post_attention_layernorm = nullptr;  // [hidden]
  T* gate_proj = nullptr;                 // [intermediate, hidden]
  T* up_proj = nullptr;                   // [intermediate, hidden]
  T* down_proj = nullptr;                 // [hidden, intermediate]
};

// Shapes of the projections of one layer, derived from the config and variant.
struct LayerShapes {
  int64_t hidden = 0;
  int64_t q_rows = 0;       // n_query_heads * head_dim
  int64_t kv_rows = 0;      // n_kv_heads * head_dim
  int64_t attn_width = 0;   // n_attention_heads * head_dim (o_proj input)
  int64_t intermediate = 0;
  static LayerShapes from_config(const ModelConfig& config);
};

class Weights {
 public:
  Weights() = default;

  // All tensors of the config, zero-filled (a gradient store, or a model to fill).
  static Weights zeros(const ModelConfig& config);

  // Hugging Face's initialisation: normal(0, stddev) for embeddings and linear
  // weights, ones for RMSNorm gains. Deterministic in seed and independent of
  // the thread count.
  static Weights random(const ModelConfig& config, uint64_t seed, double stddev = 0.02);

  // Copies (and converts from F32, BF16 or F16) every tensor of an opened
  // checkpoint. The checkpoint has already checked names and shapes.
  static Weights from_checkpoint(const Checkpoint& checkpoint);

  // Opens DIR as a checkpoint and loads it.
  static Weights load(const std::filesystem::path& directory);

  // Writes DIR/config.json and the safetensors file(s) atomically, converting
  // the f32 master data to dtype (F32, BF16 or F16, rounding to nearest even).
  void save(const std::filesystem::path& directory, DType dtype, int64_t max_shard_bytes = 0) const;

  const ModelConfig& config() const { return config_; }
  LayerShapes layer_shapes() const { return LayerShapes::from_config(config_); }

  // The whole f32 store.
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }

  const std::vector<ParameterInfo>& parameters() const { return parameters_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws ropepp::Error naming the tensor when it is not in the store.
  const ParameterInfo& info(const std::string& name) const;
  float* tensor(const std::string& name) { return data_.data() + info(name).offset; }
  const float* tensor(const std::string& name) const { return data_.data() + info(name).offset; }

  float* embed_tokens() { return tensor("model.embed_tokens.weight"); }
  const float* embed_tokens() const { return tensor("model.embed_tokens.weight"); }
  float* final_norm() { return tensor("model.norm.weight"); }
  const float* final_norm() const { return tensor("model.norm.weight"); }
  // lm_head.weight, or the embedding matrix when embeddings are tied.
  float* lm_head() { return tensor(lm_head_name()); }
  const float* lm_head() const { return tensor(lm_head_name()); }
  const std::string& lm_head_name() const { return lm_head_name_; }

  LayerTensors<float> layer(int index);
  LayerTensors<const float> layer(int index) const;

  // bf16 mirror of the whole store, for bf16 matrix products. enable_bf16()
  // allocates and fills it; after changing the f32 data call refresh_bf16().
  void enable_bf16();
  void refresh_bf16();
  void disable_bf16() { bf16_.clear(); bf16_.shrink_to_fit(); }
  bool has_bf16() const { return !bf16_.empty(); }
  const bf16_t* bf16_data() const { return bf16_.empty() ? nullptr : bf16_.data(); }

  // A linear weight by name with its bf16 copy when the mirror exists.
  LinearWeight linear(const std::string& name) const;
  LinearWeight lm_head_linear() const { return linear(lm_head_name_); }

  // Names of layer tensors, e.g. layer_tensor_name(3, "self_attn.q_proj").
  static std::string layer_tensor_name(int layer, const std::string& suffix);

 private:
  explicit Weights(const ModelConfig& config);

  ModelConfig config_;
  std::vector<ParameterInfo> parameters_;
  std::map<std::string, size_t> index_;
  HugePageVector<float> data_;
  HugePageVector<bf16_t> bf16_;
  std::string lm_head_name_;
};

}  // namespace ropepp
