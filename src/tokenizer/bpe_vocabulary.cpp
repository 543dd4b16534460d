// Validation shared by the tokenizer.json and vocab.json + merges.txt loaders.
#include <fmt/format.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/bpe_loader.h"
#include "tokenizer/byte_level.h"

namespace ropepp {
namespace {

constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();

}  // namespace

std::string quote(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

BpeTokenizerParts build_bpe_parts(const BpeFileContents& contents) {
  const std::string& source = contents.vocab_source;
  ROPEPP_CHECK(!contents.vocab.empty(), "{}: the vocabulary is empty; expected a byte-level BPE vocabulary", source);

  // 1. Ids of the model vocabulary: in range, unique, no gaps.
  const int64_t model_size = static_cast<int64_t>(contents.vocab.size());
  std::vector<const std::string*> text_of_id(model_size, nullptr);
  std::unordered_map<std::string, TokenId> id_of_text;
  id_of_text.reserve(contents.vocab.size());
  for (const auto& [text, id] : contents.vocab) {
    ROPEPP_CHECK(id >= 0 && id < model_size,
                 "{}: token {} has id {}, out of range [0, {}): ids must number the {} tokens from 0 without gaps",
                 source, quote(text), id, model_size, model_size);
    ROPEPP_CHECK(text_of_id[id] == nullptr, "{}: duplicate id {}: tokens {} and {} both have it", source, id,
                 quote(*text_of_id[id]), quote(text));
    text_of_id[id] = &text;
    id_of_text.emplace(text, static_cast<TokenId>(id));
  }

  // 2. Added tokens: an id inside the vocabulary re-labels that token (as in
  // Hugging Face tokenizers); ids after it must continue without gaps.
  int64_t total_size = model_size;
  std::unordered_map<int64_t, const AddedToken*> added_by_id;
  for (const AddedToken& token : contents.added_tokens) {
    ROPEPP_CHECK(token.id >= 0 && token.id < kMaxTokens, "{}: added token {} has id {}, out of range [0, {})",
                 contents.added_source, quote(token.content), token.id, kMaxTokens);
    const auto [it, inserted] = added_by_id.emplace(token.id, &token);
    ROPEPP_CHECK(inserted, "{}: duplicate id {}: added tokens {} and {} both have it", contents.added_source,
                 token.id, quote(it->second->content), quote(token.content));
    total_size = std::max<int64_t>(total_size, int64_t{token.id} + 1);
  }
  for (int64_t id = model_size; id < total_size; ++id) {
    ROPEPP_CHECK(added_by_id.count(id) != 0,
                 "{}: no token has id {} (the vocabulary has {} tokens and added tokens go up to id {}); "
                 "ids must have no gaps",
                 contents.added_source, id, model_size, total_size - 1);
  }

  // 3. Token bytes: byte-level text maps back to raw bytes. A token with a
  // character outside the byte-level alphabet keeps its UTF-8 text, as in
  // Hugging Face's ByteLevel decoder, but is never produced by merging raw
  // bytes, so it stays out of the piece map.
  BpeTokenizerParts parts;
  parts.source = source;
  parts.token_bytes.resize(total_size);
  PieceMap pieces;
  pieces.reserve(contents.vocab.size());
  for (int64_t id = 0; id < model_size; ++id) {
    if (std::optional<std::string> bytes = byte_level_to_bytes(*text_of_id[id])) {
      pieces.emplace(*bytes, static_cast<TokenId>(id));
      parts.token_bytes[id] = std::move(*bytes);
    } else {
      parts.token_bytes[id] = *text_of_id[id];
    }
  }
  for (const AddedToken& token : contents.added_tokens) parts.token_bytes[token.id] = token.content;
  parts.added_tokens = contents.added_tokens;

  std::vector<TokenId> byte_ids(256);
  for (int b = 0; b < 256; ++b) {
    const std::string text = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    const auto found = id_of_text.find(text);
    ROPEPP_CHECK(found != id_of_text.end(),
                 "{}: no token for byte 0x{:02X} (byte-level text {}); a byte-level BPE vocabulary needs all 256 "
                 "single-byte tokens",
                 source, b, quote(text));
    byte_ids[b] = found->second;
  }

  // 4. Merges: both parts and their concatenation must be tokens.
  std::vector<BpeMerge> merges;
  merges.reserve(contents.merges.size());
  for (size_t i = 0; i < contents.merges.size(); ++i) {
    const auto& [left, right] = contents.merges[i];
    const auto left_id = id_of_text.find(left);
    const auto right_id = id_of_text.find(right);
    ROPEPP_CHECK(left_id != id_of_text.end(), "{}: merge {} {} uses token {}, which is not in the vocabulary",
                 contents.merge_location(i), left, right, quote(left));
    ROPEPP_CHECK(right_id != id_of_text.end(), "{}: merge {} {} uses token {}, which is not in the vocabulary",
                 contents.merge_location(i), left, right, quote(right));
    const auto merged_id = id_of_text.find(left + right);
    ROPEPP_CHECK(merged_id != id_of_text.end(),
                 "{}: merge {} {} produces token {}, which is not in the vocabulary", contents.merge_location(i), left,
                 right, quote(left + right));
    merges.push_back(BpeMerge{left_id->second, right_id->second, merged_id->second});
  }

  parts.model = std::make_unique<BpeModel>(std::move(byte_ids), std::move(pieces), merges, contents.ignore_merges);
  return parts;
}

namespace {

// Returns the token text of a tokenizer_config.json field: a string, an
// object with "content", or null.
std::optional<std::string> config_token_text(const nlohmann::json& config, const char* field,
                                             const std::filesystem::path& path) {
  if (!config.contains(field) || config[field].is_null()) return std::nullopt;
  const nlohmann::json& value = config[field];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  fail("{}: field {} is {}; expected a token text or an object with \"content\"", path.string(), field, value.dump());
}

std::optional<TokenId> find_special(const BpeTokenizerParts& parts, const std::string& text) {
  for (const AddedToken& token : parts.added_tokens) {
    if (token.content == text) return token.id;
  }
  return std::nullopt;
}

}  // namespace

void assign_bos_eos(BpeTokenizerParts& parts, const std::filesystem::path& folder) {
  const std::filesystem::path config_path = folder / "tokenizer_config.json";
  if (std::filesystem::is_regular_file(config_path)) {
    std::ifstream in(config_path);
    nlohmann::json config;
    try {
      config = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& error) {
      fail("{}: invalid JSON: {}", config_path.string(), error.what());
    }
    ROPEPP_CHECK(config.is_object(), "{}: expected a JSON object with fields such as bos_token, found a JSON {}",
                 config_path.string(), config.type_name());
    for (const auto& [field, target] : {std::pair{"bos_token", &parts.bos}, std::pair{"eos_token", &parts.eos}}) {
      const std::optional<std::string> text = config_token_text(config, field, config_path);
      if (!text) continue;
      *target = find_special(parts, *text);
      ROPEPP_CHECK(target->has_value(), "{}: {} is {}, which is not an added token of {}", config_path.string(),
                   field, quote(*text), parts.source);
    }
    return;
  }
  for (const char* text : {"<|begin_of_text|>", "<s>", "<|endoftext|>"}) {
    if ((parts.bos = find_special(parts, text))) break;
  }
  for (const char* text : {"<|end_of_text|>", "</s>", "<|endoftext|>"}) {
    if ((parts.eos = find_special(parts, text))) break;
  }
}

}  // namespace ropepp
