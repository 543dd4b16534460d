// A Llama decoder with vanilla RoPE, RoPE++EH or RoPE++EC attention: prefill
// over packed sequences, incremental decode through a KV cache, and the
// evaluation hooks of the RoPE++ paper, Liu et al. 2025 (rope override, query
// noise, attention capture).
//
// One layer, with x [T][hidden]:
//   h  = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = RMSNorm(x)
//   x' = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),                     n2 = RMSNorm(h)
// then logits = lm_head(RMSNorm(x_L)). The attention head layout of each
// variant is kernels/attention.h's HeadLayout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "io/model_config.h"
#include "kernels/attention.h"
#include "kernels/kv_cache.h"
#include "kernels/rope.h"
#include "model/ops.h"
#include "model/weights.h"

namespace ropepp {

struct ModelOptions {
  // Precision of the weight matrix products. kBF16 keeps a bf16 copy of the
  // weights next to the f32 master data.
  MatmulPrecision weights_precision = MatmulPrecision::kF32;
};

// The tokens of one forward call.
//
// positions: one per token. Empty means 0..T-1, or cache.length().. when a
//   KV cache is given.
// segments: one document id per token for a packed batch. Attention stays
//   inside each segment, and positions usually restart at 0 in each. Empty
//   means one sequence. Segments cannot be combined with a KV cache.
struct ForwardInput {
  std::span<const int32_t> tokens;
  std::span<const int32_t> positions;
  std::span<const int32_t> segments;
};

// Attention probabilities to record, for attention maps (small inputs only:
// each capture contains heads x T x n_keys floats).
struct AttentionCaptureRequest {
  int layer = 0;
  std::vector<int> heads;  // attention heads (RoPE++: 2i real, 2i+1 imaginary)
};

struct AttentionCapture {
  int layer = 0;
  std::vector<int> heads;
  int64_t n_queries = 0;
  int64_t n_keys = 0;
  std::vector<float> probs;  // [heads.size()][n_queries][n_keys]
};

struct ForwardOptions {
  // Logits are written for token indices logits_start .. T-1 only, as rows
  // [T - logits_start][vocab]. T - 1 gives the last token only, T none.
  int64_t logits_start = 0;

  // Replaces the config's rope_theta and scaling for this call (context
  // extension at inference without retraining). head_dim is taken from the model.
  // Cached keys keep the rotation they were stored with, so every call on one
  // KV cache must use the same setting.
  std::optional<RopeParams> rope;

  // Gaussian noise on the rotated real or imaginary queries (the RoPE++ paper's ablation).
  QueryNoise noise;

  // Attention probabilities to record; results go to ForwardOutput::attention.
  std::vector<AttentionCaptureRequest> capture;
};

struct ForwardOutput {
  std::vector<AttentionCapture> attention;
};

class Model {
 public:
  // Loads a checkpoint folder (config.json + safetensors). Throws ropepp::Error
  // naming the file and tensor on any problem.
  static Model load(const std::filesystem::path& directory, const ModelOptions& options = {});

  // A randomly initialised model (Weights::random).
  static Model random(const ModelConfig& config, uint64_t seed, const ModelOptions& options = {});

  Model(Weights weights, const ModelOptions& options = {});
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelConfig& config() const { return weights_.config(); }
  const HeadLayout& head_layout() const { return layout_; }
  const ModelOptions& options() const { return options_; }
  const Weights& weights() const { return weights_; }
  // Mutable access; call weights_changed() after editing so the bf16 copy follows.
  Weights& mutable_weights() { return weights_; }
  void weights_changed();

  // A KV cache sized for this model: n_layers x head_layout().n_kv_heads, so an
  // EH model's cache has half the bytes of the vanilla model of the same config.
  KVCache make_cache(int64_t capacity, CacheType type = CacheType::kF32) const;

  // Runs the decoder over input.tokens and writes logits [T - logits_start][vocab].
  // With a cache, the tokens continue it: their keys and values are appended and
  // they attend to everything cached before them (chunked prefill and decode).
  // Throws ropepp::Error on out-of-range tokens, mismatched positions/segments
  // lengths, negative positions, or a cache that is full or of another shape.
  ForwardOutput forward(const ForwardInput& input, float* logits, const ForwardOptions& options = {},
                        KVCache* cache = nullptr);

  // Convenience: logits [T][vocab] for tokens at positions 0..T-1.
  std::vector<float> logits(std::span<const int32_t> tokens, const ForwardOptions& options = {});

  // Decodes one token at the end of the cache: logits [vocab] of the next token.
  void decode(int32_t token, KVCache& cache, float* logits, const ForwardOptions& options = {});

 private:
  struct Workspace;

  // Throws ropepp::Error on an invalid forward request (see forward()).
  void check_request(const ForwardInput& input, const ForwardOptions& options, const KVCache* cache) const;
  void attention_block(int layer, int64_t n_tokens, const int32_t* positions, const int32_t* segments,
                       const RopeTable& rope, const ForwardOptions& options, KVCache* cache, ForwardOutput& output);

  // Per-layer tensor pointers resolved once, so a forward call does no name lookups.
  struct LayerWeights {
    const float* input_layernorm = nullptr;
    const float* post_attention_layernorm = nullptr;
    LinearWeight q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  };

  Weights weights_;
  ModelOptions options_;
  HeadLayout layout_;
  std::unique_ptr<Workspace> workspace_;
  std::vector<LayerWeights> layers_;
  LinearWeight lm_head_;
  std::unique_ptr<RopeTable> rope_;  // from the config; ForwardOptions::rope overrides it per call
};

}  // namespace ropepp
