// Shared helpers of the serve tests: a tiny random model for the byte
// tokenizer and a greedy generation written directly against Model and Sampler.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::test {

// Byte-tokenizer ids: 256 is <|begin_of_text|>, 257 <|end_of_text|>.
inline ModelConfig tiny_serving_config() {
  ModelConfig config;
  config.vocab_size = 259;
  config.hidden_size = 32;
  config.intermediate_size = 64;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 8;
  config.max_position_embeddings = 64;
  config.bos_token_id = 256;
  config.eos_token_ids = {257};
  config.torch_dtype = "float32";
  config.variant = Variant::kEH;
  return config;
}

inline Model tiny_serving_model(uint64_t seed = 7) { return Model::random(tiny_serving_config(), seed); }

struct ReferenceGeneration {
  std::string text;  // raw bytes, not yet made valid UTF-8
  int64_t tokens = 0;
  std::string finish_reason;
};

// Greedy generation of up to max_tokens after `prompt`, stopping at token 257,
// with the prompt run as one prefill and each new token decoded on its own.
inline ReferenceGeneration greedy_reference(Model& model, const Tokenizer& tokenizer, const std::string& prompt,
                                            int64_t max_tokens) {
  const std::vector<int32_t> ids = tokenizer.encode(prompt);
  const int vocab = model.config().vocab_size;
  KVCache cache = model.make_cache(static_cast<int64_t>(ids.size()) + max_tokens);
  std::vector<float> logits(static_cast<size_t>(vocab));
  ForwardInput input;
  input.tokens = ids;
  ForwardOptions options;
  options.logits_start = static_cast<int64_t>(ids.size()) - 1;
  model.forward(input, logits.data(), options, &cache);

  SamplerOptions sampler_options;
  sampler_options.greedy = true;
  Sampler sampler(sampler_options);
  ReferenceGeneration reference;
  reference.finish_reason = "length";
  std::vector<int32_t> generated;
  for (int64_t step = 0; step < max_tokens; ++step) {
    const int32_t token = sampler.sample(logits.data(), vocab);
    ++reference.tokens;
    if (token == 257) {
      reference.finish_reason = "stop";
      break;
    }
    generated.push_back(token);
    if (step + 1 < max_tokens) model.decode(token, cache, logits.data());
  }
  reference.text = tokenizer.decode(generated);
  return reference;
}

}  // namespace ropepp::test
