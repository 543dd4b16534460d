#include "serve/completion_request.h"

#include <cmath>
#include <limits>

namespace ropepp {
namespace {

using nlohmann::json;

[[noreturn]] void reject(const std::string& param, const std::string& message) {
  throw RequestError(400, param, message);
}

// Returns the field, or nullptr when it is missing or null.
const json* find_field(const json& body, const std::string& name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double read_number(const json& value, const std::string& name) {
  if (!value.is_number()) reject(name, fmt::format("'{}' must be a number, got {}", name, value.dump()));
  const double number = value.get<double>();
  if (!std::isfinite(number)) reject(name, fmt::format("'{}' must be finite, got {}", name, value.dump()));
  return number;
}

int64_t read_integer(const json& value, const std::string& name, int64_t min, int64_t max) {
  if (!value.is_number_integer()) {
    reject(name, fmt::format("'{}' must be an integer, got {}", name, value.dump()));
  }
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(max)) {
    reject(name, fmt::format("'{}' must be at most {}, got {}", name, max, value.dump()));
  }
  const int64_t number = value.get<int64_t>();
  if (number < min || number > max) {
    reject(name, fmt::format("'{}' must be between {} and {}, got {}", name, min, max, number));
  }
  return number;
}

std::vector<std::string> read_stop(const json& value) {
  std::vector<std::string> stop;
  if (value.is_string()) {
    stop.push_back(value.get<std::string>());
  } else if (value.is_array()) {
    for (const json& item : value) {
      if (!item.is_string()) reject("stop", fmt::format("'stop' must contain only strings, got {}", item.dump()));
      stop.push_back(item.get<std::string>());
    }
  } else {
    reject("stop", fmt::format("'stop' must be a string or an array of strings, got {}", value.dump()));
  }
  if (stop.size() > 4) reject("stop", fmt::format("'stop' may contain at most 4 strings, got {}", stop.size()));
  for (const std::string& item : stop) {
    if (item.empty()) reject("stop", "'stop' strings must not be empty");
  }
  return stop;
}

// Rejects a field of the OpenAI API that this server does not implement,
// unless it has its neutral value.
void reject_unless_neutral(const json& body, const std::string& name, const json& neutral) {
  const json* value = find_field(body, name);
  if (value == nullptr || *value == neutral) return;
  reject(name, fmt::format("'{}' is not supported by this server: leave it out or set it to {}", name,
                           neutral.dump()));
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body_text, bool chat) {
  const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) reject("", "the request body is not valid JSON");
  if (!body.is_object()) reject("", fmt::format("the request body must be a JSON object, got {}", body.type_name()));

  CompletionRequest request;
  if (const json* model = find_field(body, "model")) {
    if (!model->is_string()) reject("model", fmt::format("'model' must be a string, got {}", model->dump()));
    request.model = model->get<std::string>();
  }

  if (chat) {
    const json* messages = find_field(body, "messages");
    if (messages == nullptr) reject("messages", "'messages' is required");
    request.messages = parse_chat_messages(*messages);
  } else {
    const json* prompt = find_field(body, "prompt");
    if (prompt == nullptr) reject("prompt", "'prompt' is required");
    if (!prompt->is_string()) {
      reject("prompt", fmt::format("'prompt' must be a string (arrays of prompts are not supported), got {}",
                                   prompt->type_name()));
    }
    request.prompt = prompt->get<std::string>();
    if (request.prompt.empty()) reject("prompt", "'prompt' must not be empty");
  }

  if (const json* value = find_field(body, "max_tokens")) {
    request.max_tokens = read_integer(*value, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  }
  if (const json* value = find_field(body, "temperature")) {
    request.sampler.temperature = read_number(*value, "temperature");
    if (request.sampler.temperature < 0) {
      reject("temperature", fmt::format("'temperature' must be >= 0, got {}", value->dump()));
    }
  }
  request.sampler.greedy = request.sampler.temperature == 0.0;
  if (const json* value = find_field(body, "top_p")) {
    request.sampler.top_p = read_number(*value, "top_p");
    if (!(request.sampler.top_p > 0 && request.sampler.top_p <= 1)) {
      reject("top_p", fmt::format("'top_p' must be in (0, 1], got {}", value->dump()));
    }
  }
  if (const json* value = find_field(body, "top_k")) {
    request.sampler.top_k = static_cast<int>(read_integer(*value, "top_k", 0, std::numeric_limits<int32_t>::max()));
  }
  if (const json* value = find_field(body, "seed")) {
    request.sampler.seed = static_cast<uint64_t>(read_integer(*value, "seed", 0, std::numeric_limits<int64_t>::max()));
    request.seed_given = true;
  }
  if (const json* value = find_field(body, "stop")) request.stop = read_stop(*value);
  if (const json* value = find_field(body, "stream")) {
    if (!value->is_boolean()) reject("stream", fmt::format("'stream' must be a boolean, got {}", value->dump()));
    request.stream = value->get<bool>();
  }

  reject_unless_neutral(body, "n", 1);
  reject_unless_neutral(body, "best_of", 1);
  reject_unless_neutral(body, "echo", false);
  reject_unless_neutral(body, "logprobs", nullptr);
  reject_unless_neutral(body, "suffix", nullptr);
  reject_unless_neutral(body, "presence_penalty", 0);
  reject_unless_neutral(body, "frequency_penalty", 0);
  return request;
}

}  // namespace ropepp
