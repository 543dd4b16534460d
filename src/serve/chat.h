// Chat messages to prompt tokens for POST /v1/chat/completions.
//
// Template, chosen by the tokenizer's special tokens:
//   - Llama 3, when <|start_header_id|>, <|end_header_id|> and <|eot_id|> exist:
//       [BOS] <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> ... for
//       each message, then <|start_header_id|>assistant<|end_header_id|>\n\n;
//       generation stops at <|eot_id|>.
//   - Otherwise plain lines: [BOS] "role: content\n" for each message, then
//       "assistant:"; generation stops at "\nuser:" or "\nsystem:".
// Message text is always encoded as ordinary text, so special-token text
// inside a message cannot forge a header.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace ropepp {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Parses the "messages" field. Throws RequestError (status 400, param
// "messages") unless it is a non-empty array of {"role", "content"} objects
// with a known role and string content.
std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages);

struct ChatPrompt {
  std::vector<TokenId> tokens;
  std::vector<TokenId> stop_token_ids;  // in addition to the end-of-text ids
  std::vector<std::string> stop_strings;
};

ChatPrompt build_chat_prompt(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                             std::optional<TokenId> bos);

}  // namespace ropepp
