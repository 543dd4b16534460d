#include "serve/chat.h"

#include "serve/completion_request.h"

namespace ropepp {

std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages) {
  auto reject = [](const std::string& message) { throw RequestError(400, "messages", message); };
  if (!messages.is_array() || messages.empty()) {
    reject(fmt::format("'messages' must be a non-empty array, got {}", messages.dump()));
  }
  std::vector<ChatMessage> parsed;
  for (size_t i = 0; i < messages.size(); ++i) {
    const nlohmann::json& item = messages[i];
    if (!item.is_object()) reject(fmt::format("messages[{}] must be an object, got {}", i, item.dump()));
    const auto role = item.find("role");
    const auto content = item.find("content");
    if (role == item.end() || !role->is_string()) reject(fmt::format("messages[{}].role must be a string", i));
    if (content == item.end() || !content->is_string()) {
      reject(fmt::format("messages[{}].content must be a string", i));
    }
    ChatMessage message{role->get<std::string>(), content->get<std::string>()};
    if (message.role != "system" && message.role != "user" && message.role != "assistant") {
      reject(fmt::format("messages[{}].role must be system, user or assistant, got '{}'", i, message.role));
    }
    parsed.push_back(std::move(message));
  }
  return parsed;
}

ChatPrompt build_chat_prompt(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                             std::optional<TokenId> bos) {
  ChatPrompt prompt;
  if (bos.has_value()) prompt.tokens.push_back(*bos);
  auto append_text = [&](const std::string& text) {
    const std::vector<TokenId> ids = tokenizer.encode(text);
    prompt.tokens.insert(prompt.tokens.end(), ids.begin(), ids.end());
  };

  const std::optional<TokenId> start_header = tokenizer.special_token_id("<|start_header_id|>");
  const std::optional<TokenId> end_header = tokenizer.special_token_id("<|end_header_id|>");
  const std::optional<TokenId> end_of_turn = tokenizer.special_token_id("<|eot_id|>");
  if (start_header && end_header && end_of_turn) {
    auto append_header = [&](const std::string& role) {
      prompt.tokens.push_back(*start_header);
      append_text(role);
      prompt.tokens.push_back(*end_header);
      append_text("\n\n");
    };
    for (const ChatMessage& message : messages) {
      append_header(message.role);
      append_text(message.content);
      prompt.tokens.push_back(*end_of_turn);
    }
    append_header("assistant");
    prompt.stop_token_ids.push_back(*end_of_turn);
    return prompt;
  }

  std::string text;
  for (const ChatMessage& message : messages) text += message.role + ": " + message.content + "\n";
  append_text(text + "assistant:");
  prompt.stop_strings = {"\nuser:", "\nsystem:"};
  return prompt;
}

}  // namespace ropepp
