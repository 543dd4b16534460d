#include "model/generation.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace ropepp {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

StopStringFilter::StopStringFilter(std::vector<std::string> stop_strings) : stop_strings_(std::move(stop_strings)) {
  for (const std::string& stop : stop_strings_) {
    ROPEPP_CHECK(!stop.empty(), "stop strings must not be empty");
  }
}

std::string StopStringFilter::push(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);

  // The earliest match of any stop string ends the output.
  size_t match = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    match = std::min(match, pending_.find(stop));
  }
  if (match != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, match);
    pending_.clear();
    return out;
  }

  // Hold back the longest tail that is a proper prefix of some stop string.
  // Everything before it can never become part of a match.
  size_t safe = pending_.size();
  for (const std::string& stop : stop_strings_) {
    const size_t longest = std::min(stop.size() - 1, pending_.size());
    for (size_t length = longest; length > 0; --length) {
      if (pending_.compare(pending_.size() - length, length, stop, 0, length) == 0) {
        safe = std::min(safe, pending_.size() - length);
        break;
      }
    }
  }
  std::string out = pending_.substr(0, safe);
  pending_.erase(0, safe);
  return out;
}

std::string StopStringFilter::finish() {
  std::string out = stopped_ ? std::string() : std::move(pending_);
  pending_.clear();
  return out;
}

GenerationResult generate_text(Model& model, const Tokenizer& tokenizer, const GenerationRequest& request,
                               const TextCallback& on_text) {
  ROPEPP_CHECK(!request.prompt.empty(), "the prompt has no tokens: generation needs at least one");
  ROPEPP_CHECK(request.max_tokens >= 1, "max_tokens must be at least 1, got {}", request.max_tokens);
  request.sampler.validate();

  const int vocab = model.config().vocab_size;
  const auto prompt_size = static_cast<int64_t>(request.prompt.size());
  Sampler sampler(request.sampler);
  StreamDecoder decoder(tokenizer);
  StopStringFilter filter(request.stop_strings);
  KVCache cache = model.make_cache(prompt_size + request.max_tokens, request.cache_type);
  std::vector<float> logits(static_cast<size_t>(vocab));
  GenerationResult result;
  result.prompt_tokens = prompt_size;

  // Sends text through the stop filter to the caller. Returns false when the
  // caller cancelled.
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return true;
    result.text += piece;
    return !on_text || on_text(piece);
  };

  // Prefill: only the last prompt token needs logits.
  const auto start = std::chrono::steady_clock::now();
  ForwardInput input;
  input.tokens = request.prompt;
  ForwardOptions forward_options;
  forward_options.logits_start = prompt_size - 1;
  model.forward(input, logits.data(), forward_options, &cache);
  result.prefill_seconds = seconds_since(start);

  auto decode_start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < request.max_tokens; ++step) {
    const int32_t token = sampler.sample(logits.data(), vocab);
    if (step == 0) {
      decode_start = std::chrono::steady_clock::now();
      result.first_token_seconds = seconds_since(start);
    }
    ++result.completion_tokens;
    if (std::find(request.stop_token_ids.begin(), request.stop_token_ids.end(), token) !=
        request.stop_token_ids.end()) {
      result.finish_reason = FinishReason::kStop;
      break;
    }
    if (token < tokenizer.vocab_size()) {
      if (!emit(filter.push(decoder.push(token)))) {
        result.finish_reason = FinishReason::kCancelled;
        result.decode_seconds = seconds_since(decode_start);
        return result;
      }
      if (filter.stopped()) {
        result.finish_reason = FinishReason::kStop;
        break;
      }
    }
    if (step + 1 == request.max_tokens) break;
    model.decode(token, cache, logits.data());
  }
  result.decode_seconds = seconds_since(decode_start);

  // An incomplete UTF-8 character at the end, then the tail held back for
  // stop-string matching.
  if (!filter.stopped()) {
    const std::string rest = filter.push(decoder.finish());
    if (filter.stopped()) result.finish_reason = FinishReason::kStop;
    if (!emit(rest + filter.finish())) result.finish_reason = FinishReason::kCancelled;
  }
  return result;
}

}  // namespace ropepp
