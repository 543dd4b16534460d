// The JSON body of POST /v1/completions (OpenAI's legacy completions API),
// parsed and checked field by field before any token is generated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/sampler.h"
#include "serve/chat.h"

namespace ropepp {

// A request the server rejects, with the HTTP status and the name of the JSON
// field at fault (empty when no single field is), for the OpenAI-style error
// object {"error": {"message", "type", "param", "code"}}.
class RequestError : public Error {
 public:
  RequestError(int status, std::string param, const std::string& message, std::string type = "invalid_request_error")
      : Error(message), status_(status), param_(std::move(param)), type_(std::move(type)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_;
  std::string type_;
};

struct CompletionRequest {
  std::string model;                   // empty when the request names none
  std::string prompt;                  // non-empty; completions only
  std::vector<ChatMessage> messages;   // non-empty; chat completions only
  std::optional<int64_t> max_tokens;   // >= 1; unset: the server's default
  SamplerOptions sampler;              // temperature 0 selects greedy
  bool seed_given = false;             // false: the server picks a random seed
  std::vector<std::string> stop;       // at most 4, each non-empty
  bool stream = false;
};

// Parses the body of a completion request, or of a chat completion request
// when `chat` is true. Throws RequestError (status 400) naming the field on
// malformed JSON, a wrong type or a value out of range:
//   prompt (completions): string, required, non-empty (arrays of prompts are not supported)
//   messages (chat): see parse_chat_messages
//   max_tokens: integer >= 1, or null
//   temperature: number >= 0 (0: greedy); top_p: number in (0, 1];
//   top_k (an extension): integer >= 0, 0 keeps every token;
//   seed: integer >= 0; stop: string or array of up to 4 non-empty strings, or null;
//   stream: boolean; n and best_of: 1 only; echo: false only; logprobs and
//   suffix: null only; presence_penalty and frequency_penalty: 0 only.
// Other fields (user, ...) are ignored, as OpenAI-compatible servers do.
CompletionRequest parse_completion_request(const std::string& body, bool chat = false);

}  // namespace ropepp
