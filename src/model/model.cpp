#include "model/model.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "kernels/rope.h"

namespace ropepp {

// Activations reused across calls: buffers only grow, so a decode loop does
// not allocate after its first token.
struct Model::Workspace {
  std::vector<float> x;       // residual stream [T][hidden]
  std::vector<float> normed;  // [T][hidden]
  std::vector<float> q;       // [T][q_rows]
  std::vector<float> k;       // [T][kv_rows]
  std::vector<float> v;       // [T][kv_rows]
  std::vector<float> attn;    // [T][attn_width]
  std::vector<float> gate;    // [T][intermediate]
  std::vector<float> up;      // [T][intermediate]
  std::vector<int32_t> positions;

  static void fit(std::vector<float>& buffer, int64_t n) {
    if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  }
};

Model Model::load(const std::filesystem::path& directory, const ModelOptions& options) {
  return Model(Weights::load(directory), options);
}

Model Model::random(const ModelConfig& config, uint64_t seed, const ModelOptions& options) {
  return Model(Weights::random(config, seed), options);
}

Model::Model(Weights weights, const ModelOptions& options)
    : weights_(std::move(weights)),
      options_(options),
      layout_(weights_.config().head_layout()),
      workspace_(std::make_unique<Workspace>()),
      rope_(std::make_unique<RopeTable>(weights_.config().rope_params())) {
  weights_changed();
}

Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

void Model::weights_changed() {
  if (options_.weights_precision == MatmulPrecision::kBF16) {
    if (weights_.has_bf16()) {
      weights_.refresh_bf16();
    } else {
      weights_.enable_bf16();
    }
  }
  layers_.clear();
  for (int i = 0; i < config().num_hidden_layers; ++i) {
    auto linear = [&](const char* suffix) { return weights_.linear(Weights::layer_tensor_name(i, suffix)); };
    const LayerTensors<const float> tensors = std::as_const(weights_).layer(i);
    LayerWeights layer;
    layer.input_layernorm = tensors.input_layernorm;
    layer.post_attention_layernorm = tensors.post_attention_layernorm;
    layer.q_proj = linear("self_attn.q_proj");
    layer.k_proj = linear("self_attn.k_proj");
    layer.v_proj = linear("self_attn.v_proj");
    layer.o_proj = linear("self_attn.o_proj");
    layer.gate_proj = linear("mlp.gate_proj");
    layer.up_proj = linear("mlp.up_proj");
    layer.down_proj = linear("mlp.down_proj");
    layers_.push_back(layer);
  }
  lm_head_ = weights_.lm_head_linear();
}

KVCache Model::make_cache(int64_t capacity, CacheType type) const {
  return KVCache(config().num_hidden_layers, layout_.n_kv_heads, layout_.head_dim, capacity, type);
}

std::vector<float> Model::logits(std::span<const int32_t> tokens, const ForwardOptions& options) {
  std::vector<float> out(tokens.size() * static_cast<size_t>(config().vocab_size));
  ForwardInput input;
  input.tokens = tokens;
  forward(input, out.data(), options);
  return out;
}

void Model::decode(int32_t token, KVCache& cache, float* logits, const ForwardOptions& options) {
  ForwardInput input;
  input.tokens = std::span<const int32_t>(&token, 1);
  forward(input, logits, options, &cache);
}

void Model::check_request(const ForwardInput& input, const ForwardOptions& options, const KVCache* cache) const {
  const ModelConfig& config = this->config();
  const int64_t n_tokens = static_cast<int64_t>(input.tokens.size());
  const int64_t start = cache != nullptr ? cache->length() : 0;
  ROPEPP_CHECK(n_tokens > 0, "forward called with no tokens");
  ROPEPP_CHECK(options.logits_start >= 0 && options.logits_start <= n_tokens,
               "logits_start {} is outside 0..{} (the number of tokens)", options.logits_start, n_tokens);
  ROPEPP_CHECK(input.positions.empty() || static_cast<int64_t>(input.positions.size()) == n_tokens,
               "got {} positions for {} tokens: expected one position per token", input.positions.size(),
               n_tokens);
  ROPEPP_CHECK(input.segments.empty() || static_cast<int64_t>(input.segments.size()) == n_tokens,
               "got {} segment ids for {} tokens: expected one per token", input.segments.size(), n_tokens);
  if (cache != nullptr) {
    ROPEPP_CHECK(input.segments.empty(), "segment ids cannot be combined with a KV cache: run packed "
                                         "sequences without a cache, or one sequence per cache");
    ROPEPP_CHECK(options.capture.empty(), "attention capture needs the whole sequence in one call without a "
                                          "KV cache");
    ROPEPP_CHECK(cache->n_layers() == config.num_hidden_layers && cache->n_kv_heads() == layout_.n_kv_heads &&
                     cache->head_dim() == layout_.head_dim,
                 "KV cache shape ({} layers, {} key/value heads, head_dim {}) does not match the model ({}, {}, "
                 "{}); create it with Model::make_cache",
                 cache->n_layers(), cache->n_kv_heads(), cache->head_dim(), config.num_hidden_layers,
                 layout_.n_kv_heads, layout_.head_dim);
    ROPEPP_CHECK(start + n_tokens <= cache->capacity(),
                 "KV cache is full: {} cached + {} new tokens exceed its capacity of {} tokens", start, n_tokens,
                 cache->capacity());
  }
  for (const AttentionCaptureRequest& request : options.capture) {
    ROPEPP_CHECK(request.layer >= 0 && request.layer < config.num_hidden_layers,
                 "attention capture layer {} is outside 0..{}", request.layer, config.num_hidden_layers - 1);
    for (int head : request.heads) {
      ROPEPP_CHECK(head >= 0 && head < layout_.n_attention_heads(),
                   "attention capture head {} is outside 0..{} (attention heads of this model)", head,
                   layout_.n_attention_heads() - 1);
    }
  }
}

// Self-attention of one layer: ws.q, ws.k, ws.v (before rotation) -> ws.attn.
void Model::attention_block(int layer, int64_t n_tokens, const int32_t* positions, const int32_t* segments,
                            const RopeTable& rope, const ForwardOptions& options, KVCache* cache,
                            ForwardOutput& output) {
  Workspace& ws = *workspace_;
  const int64_t start = cache != nullptr ? cache->length() : 0;
  if (cache == nullptr || start == 0) {
    // Whole sequence in this call: the fused prefill kernel on unrotated keys.
    AttentionArgs args = self_attention_args(layout_, rope, n_tokens, positions, segments, true);
    args.noise = options.noise;
    attention_forward(args, ws.q.data(), ws.k.data(), ws.v.data(), ws.attn.data(), nullptr);
    for (const AttentionCaptureRequest& request : options.capture) {
      if (request.layer != layer) continue;
      AttentionCapture capture;
      capture.layer = layer;
      capture.heads = request.heads;
      capture.n_queries = n_tokens;
      capture.n_keys = n_tokens;
      capture.probs.resize(request.heads.size() * static_cast<size_t>(n_tokens * n_tokens));
      attention_probabilities(args, ws.q.data(), ws.k.data(), request.heads, capture.probs.data());
      output.attention.push_back(std::move(capture));
    }
    if (cache != nullptr) {
      rope_rotate(rope, positions, n_tokens, layout_.n_kv_heads, ws.k.data());
      cache->write(layer, start, n_tokens, ws.k.data(), ws.v.data());
    }
  } else {
    // Continue the cache: store the new rotated keys, then attend to all.
    rope_rotate(rope, positions, n_tokens, layout_.n_kv_heads, ws.k.data());
    cache->write(layer, start, n_tokens, ws.k.data(), ws.v.data());
    AttentionArgs args;
    args.layout = layout_;
    args.rope = &rope;
    args.causal = true;
    args.n_queries = n_tokens;
    args.n_keys = start + n_tokens;
    args.query_offset = start;
    args.query_positions = positions;
    args.noise = options.noise;
    attention_forward_cached(args, ws.q.data(), cache->view(layer), ws.attn.data(), nullptr);
  }
}

ForwardOutput Model::forward(const ForwardInput& input, float* logits, const ForwardOptions& options,
                             KVCache* cache) {
  const ModelConfig& config = this->config();
  const int64_t n_tokens = static_cast<int64_t>(input.tokens.size());
  const LayerShapes shapes = weights_.layer_shapes();
  const MatmulPrecision precision = options_.weights_precision;
  const int64_t start = cache != nullptr ? cache->length() : 0;

  check_request(input, options, cache);

  Workspace& ws = *workspace_;
  const int32_t* positions = input.positions.data();
  if (input.positions.empty()) {
    ws.positions.resize(static_cast<size_t>(n_tokens));
    for (int64_t i = 0; i < n_tokens; ++i) ws.positions[i] = static_cast<int32_t>(start + i);
    positions = ws.positions.data();
  } else {
    for (int64_t i = 0; i < n_tokens; ++i) {
      ROPEPP_CHECK(positions[i] >= 0, "position {} at index {} is negative", positions[i], i);
    }
  }
  const int32_t* segments = input.segments.empty() ? nullptr : input.segments.data();

  std::unique_ptr<RopeTable> rope_override;
  if (options.rope.has_value()) {
    RopeParams params = *options.rope;
    params.head_dim = layout_.head_dim;
    rope_override = std::make_unique<RopeTable>(params);
  }
  const RopeTable& rope = rope_override ? *rope_override : *rope_;

  // ---- Buffers ----
  Workspace::fit(ws.x, n_tokens * shapes.hidden);
  Workspace::fit(ws.normed, n_tokens * shapes.hidden);
  Workspace::fit(ws.q, n_tokens * shapes.q_rows);
  Workspace::fit(ws.k, n_tokens * shapes.kv_rows);
  Workspace::fit(ws.v, n_tokens * shapes.kv_rows);
  Workspace::fit(ws.attn, n_tokens * shapes.attn_width);
  Workspace::fit(ws.gate, n_tokens * shapes.intermediate);
  Workspace::fit(ws.up, n_tokens * shapes.intermediate);

  ForwardOutput output;
  embedding_forward(weights_.embed_tokens(), config.vocab_size, shapes.hidden, input.tokens.data(), n_tokens,
                    ws.x.data());

  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    const LayerWeights& tensors = layers_[layer];

    // ---- Attention block ----
    rms_norm_forward(ws.x.data(), tensors.input_layernorm, n_tokens, shapes.hidden, config.rms_norm_eps,
                     ws.normed.data());
    linear_forward(ws.normed.data(), n_tokens, tensors.q_proj, ws.q.data(), precision);
    linear_forward(ws.normed.data(), n_tokens, tensors.k_proj, ws.k.data(), precision);
    linear_forward(ws.normed.data(), n_tokens, tensors.v_proj, ws.v.data(), precision);

    attention_block(layer, n_tokens, positions, segments, rope, options, cache, output);
    // The residual add is folded into the product (accumulate).
    linear_forward(ws.attn.data(), n_tokens, tensors.o_proj, ws.x.data(), precision, true);

    // ---- MLP block ----
    rms_norm_forward(ws.x.data(), tensors.post_attention_layernorm, n_tokens, shapes.hidden, config.rms_norm_eps,
                     ws.normed.data());
    linear_forward(ws.normed.data(), n_tokens, tensors.gate_proj, ws.gate.data(), precision);
    linear_forward(ws.normed.data(), n_tokens, tensors.up_proj, ws.up.data(), precision);
    swiglu_forward(ws.gate.data(), ws.up.data(), n_tokens * shapes.intermediate, ws.gate.data());
    linear_forward(ws.gate.data(), n_tokens, tensors.down_proj, ws.x.data(), precision, true);
  }
  if (cache != nullptr) cache->set_length(start + n_tokens);

  // ---- Final norm and LM head, only for the rows that need logits ----
  const int64_t n_logit_rows = n_tokens - options.logits_start;
  if (n_logit_rows > 0) {
    const float* last_hidden = ws.x.data() + options.logits_start * shapes.hidden;
    rms_norm_forward(last_hidden, weights_.final_norm(), n_logit_rows, shapes.hidden, config.rms_norm_eps,
                     ws.normed.data());
    linear_forward(ws.normed.data(), n_logit_rows, lm_head_, logits, precision);
  }
  return output;
}

}  // namespace ropepp
