// Text generation from a prompt: prefill, then one decode step per new token,
// with stop tokens, stop strings and UTF-8-safe incremental text output. Used
// by `ropepp generate` and by the HTTP server.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/attention.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted; must not be empty
  int64_t max_tokens = 16;      // new tokens at most, >= 1
  SamplerOptions sampler;
  // Generation ends when one of these ids is sampled; its text is not output.
  std::vector<int32_t> stop_token_ids;
  // Generation ends when the output text contains one of these (non-empty)
  // strings; the text is cut before the first match.
  std::vector<std::string> stop_strings;
  CacheType cache_type = CacheType::kF32;
};

enum class FinishReason { kStop, kLength, kCancelled };

// "stop", "length" or "cancelled".
const char* finish_reason_name(FinishReason reason);

struct GenerationResult {
  std::string text;               // everything passed to on_text, concatenated
  int64_t completion_tokens = 0;  // sampled tokens, the stop token included
  FinishReason finish_reason = FinishReason::kLength;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0.0;      // the prompt's forward pass
  double first_token_seconds = 0.0;  // from the start to the first sampled token
  double decode_seconds = 0.0;       // from the first sampled token to the end
};

// Called with each new piece of output text (never empty). Returning false
// cancels the generation, e.g. when the client has disconnected.
using TextCallback = std::function<bool(std::string_view text)>;

// Generates up to request.max_tokens tokens after the prompt. Sampled ids at
// or above tokenizer.vocab_size() (padding rows of a rounded-up embedding)
// count as tokens but produce no text. Text that might be the start of a stop
// string is held back until it is known not to be one, so on_text never
// receives any part of a matched stop string.
//
// Not thread-safe for one Model: Model::forward uses the model's workspace, so
// callers serialise generations on the same model. Throws ropepp::Error on an
// invalid request (empty prompt, max_tokens < 1, bad sampler options).
GenerationResult generate_text(Model& model, const Tokenizer& tokenizer, const GenerationRequest& request,
                               const TextCallback& on_text = nullptr);

// Incremental stop-string matching over text that arrives in pieces.
class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stop_strings);

  // Appends text and returns the part that is now safe to output: the text
  // before a stop string, when one has appeared (stopped() is then true), or
  // else everything but a tail that could still grow into a stop string.
  std::string push(std::string_view text);

  // Returns the held-back tail at the end of the stream.
  std::string finish();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_strings_;
  std::string pending_;  // text not yet output
  bool stopped_ = false;
};

}  // namespace ropepp
