// Hugging Face tokenizer.json (format version 1.0), byte-level BPE only.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/bpe_loader.h"

namespace ropepp {
namespace {

using nlohmann::json;

// Reads the parts of tokenizer.json, with the file name for every message.
class TokenizerJsonReader {
 public:
  explicit TokenizerJsonReader(std::filesystem::path path) : path_(std::move(path)), file_(path_.string()) {}

  std::unique_ptr<Tokenizer> read() {
    parse();
    check_version();
    check_normalizer();

    BpeFileContents contents;
    read_model(contents);
    read_added_tokens(contents);
    BpeTokenizerParts parts = build_bpe_parts(contents);
    parts.source = file_;

    bool byte_level = false;
    read_pre_tokenizer(root_["pre_tokenizer"], "pre_tokenizer", parts, byte_level);
    ROPEPP_CHECK(byte_level,
                 "{}: pre_tokenizer has no ByteLevel step; ropepp reads byte-level BPE tokenizers only "
                 "(Llama-3, GPT-2 and their relatives)",
                 file_);
    check_decoder();
    check_post_processor(root_["post_processor"], "post_processor");
    warn_ignored("truncation");
    warn_ignored("padding");

    assign_bos_eos(parts, path_.parent_path());
    return std::make_unique<BpeTokenizer>(std::move(parts));
  }

 private:
  void parse() {
    std::ifstream in(path_, std::ios::binary);
    ROPEPP_CHECK(in.good(), "{}: cannot open the tokenizer file", file_);
    try {
      root_ = json::parse(in);
    } catch (const json::exception& error) {
      fail("{}: invalid JSON: {}", file_, error.what());
    }
    ROPEPP_CHECK(root_.is_object(), "{}: expected a JSON object at the top level, found {}", file_,
                 root_.type_name());
  }

  // Returns root_[key] (or object[key]) checked for a JSON type, naming `field` in errors.
  const json& field(const json& object, const char* key, json::value_t type, const std::string& name) {
    ROPEPP_CHECK(object.contains(key), "{}: field {} is missing", file_, name);
    const json& value = object[key];
    ROPEPP_CHECK(value.type() == type || (type == json::value_t::number_integer && value.is_number_integer()),
                 "{}: field {} is a JSON {}; expected a JSON {}", file_, name, value.type_name(),
                 json(type).type_name());
    return value;
  }

  // Returns object[key] as a bool, or `fallback` when the key is absent or null.
  bool optional_bool(const json& object, const char* key, bool fallback, const std::string& name) {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    const json& value = object[key];
    ROPEPP_CHECK(value.is_boolean(), "{}: field {} is {}; expected true or false", file_, name, value.dump());
    return value.get<bool>();
  }

  // Returns object[key] as a string, or `fallback` when the key is absent or null.
  std::string optional_string(const json& object, const char* key, const std::string& fallback,
                              const std::string& name) {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    const json& value = object[key];
    ROPEPP_CHECK(value.is_string(), "{}: field {} is {}; expected a string", file_, name,
                 value.dump().substr(0, 200));
    return value.get<std::string>();
  }

  // Returns the "type" of a pipeline step such as the decoder, checking that the step is an object.
  std::string step_type(const json& step, const std::string& name) {
    ROPEPP_CHECK(step.is_object(), "{}: {} is {}; expected an object with a \"type\"", file_, name,
                 step.dump().substr(0, 200));
    return optional_string(step, "type", "?", name + ".type");
  }

  void check_version() {
    ROPEPP_CHECK(root_.contains("version"), "{}: field version is missing; expected \"1.0\" (a Hugging Face "
                 "tokenizer.json)", file_);
    ROPEPP_CHECK(root_["version"] == "1.0", "{}: field version is {}; ropepp reads version \"1.0\"", file_,
                 root_["version"].dump());
  }

  void check_normalizer() {
    if (!root_.contains("normalizer") || root_["normalizer"].is_null()) return;
    fail("{}: normalizer {} is not supported; ropepp reads byte-level BPE tokenizers without a normalizer "
         "(Llama-3, GPT-2)",
         file_, step_type(root_["normalizer"], "normalizer"));
  }

  void read_model(BpeFileContents& contents) {
    const json& model = field(root_, "model", json::value_t::object, "model");
    const std::string type = optional_string(model, "type", "BPE", "model.type");
    ROPEPP_CHECK(type == "BPE", "{}: model.type is \"{}\"; ropepp reads BPE models only", file_, type);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const bool unset = !model.contains(key) || model[key].is_null() || model[key] == "";
      ROPEPP_CHECK(unset, "{}: model.{} is {}; byte-level BPE with it is not supported", file_, key,
                   model[key].dump());
    }
    const bool no_dropout = !model.contains("dropout") || model["dropout"].is_null() || model["dropout"] == 0;
    ROPEPP_CHECK(no_dropout, "{}: model.dropout is {}; BPE dropout is for training and not supported", file_,
                 model["dropout"].dump());
    ROPEPP_CHECK(!optional_bool(model, "byte_fallback", false, "model.byte_fallback"),
                 "{}: model.byte_fallback is true; that is SentencePiece-style BPE, not byte-level BPE", file_);
    contents.ignore_merges = optional_bool(model, "ignore_merges", false, "model.ignore_merges");

    contents.vocab_source = file_ + ": model.vocab";
    const json& vocab = field(model, "vocab", json::value_t::object, "model.vocab");
    contents.vocab.reserve(vocab.size());
    for (const auto& [text, id] : vocab.items()) {
      ROPEPP_CHECK(id.is_number_integer(), "{}: model.vocab[{}] is {}; expected an integer id", file_,
                   json(text).dump(), id.dump());
      contents.vocab.emplace_back(text, id.get<int64_t>());
    }

    const json& merges = field(model, "merges", json::value_t::array, "model.merges");
    contents.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) contents.merges.push_back(read_merge(merges[i], i));
    const std::string file = file_;
    contents.merge_location = [file](size_t i) { return fmt::format("{}: model.merges[{}]", file, i); };
  }

  // Reads a merge written as "left right" (older files, e.g. Llama-3) or as ["left", "right"].
  std::pair<std::string, std::string> read_merge(const json& merge, size_t index) {
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      ROPEPP_CHECK(space != std::string::npos && space > 0 && space + 1 < text.size() &&
                       text.find(' ', space + 1) == std::string::npos,
                   "{}: model.merges[{}] is {}; expected two tokens separated by one space", file_, index,
                   merge.dump());
      return {text.substr(0, space), text.substr(space + 1)};
    }
    ROPEPP_CHECK(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
                 "{}: model.merges[{}] is {}; expected \"left right\" or [\"left\", \"right\"]", file_, index,
                 merge.dump());
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }

  void read_added_tokens(BpeFileContents& contents) {
    contents.added_source = file_ + ": added_tokens";
    if (!root_.contains("added_tokens") || root_["added_tokens"].is_null()) return;
    const json& list = field(root_, "added_tokens", json::value_t::array, "added_tokens");
    for (size_t i = 0; i < list.size(); ++i) {
      const json& entry = list[i];
      const std::string name = fmt::format("added_tokens[{}]", i);
      ROPEPP_CHECK(entry.is_object(), "{}: {} is {}; expected an object", file_, name, entry.dump());
      AddedToken token;
      const json& id = field(entry, "id", json::value_t::number_integer, name + ".id");
      ROPEPP_CHECK(id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX, "{}: {}.id is {}; expected an id in "
                   "[0, {})", file_, name, id.dump(), INT32_MAX);
      token.id = static_cast<TokenId>(id.get<int64_t>());
      token.content = field(entry, "content", json::value_t::string, name + ".content").get<std::string>();
      ROPEPP_CHECK(!token.content.empty(), "{}: {}.content is empty", file_, name);
      token.special = optional_bool(entry, "special", false, name + ".special");
      token.lstrip = optional_bool(entry, "lstrip", false, name + ".lstrip");
      token.rstrip = optional_bool(entry, "rstrip", false, name + ".rstrip");
      ROPEPP_CHECK(!optional_bool(entry, "single_word", false, name + ".single_word"),
                   "{}: {}.single_word is true for {}; added tokens matched only as whole words are not supported",
                   file_, name, json(token.content).dump());
      contents.added_tokens.push_back(std::move(token));
    }
  }

  void read_pre_tokenizer(const json& step, const std::string& name, BpeTokenizerParts& parts, bool& byte_level) {
    if (step.is_null()) return;
    ROPEPP_CHECK(step.is_object() && step.contains("type"), "{}: {} is {}; expected an object with a \"type\"",
                 file_, name, step.dump().substr(0, 200));
    const std::string type = optional_string(step, "type", "?", name + ".type");
    if (type == "Sequence") {
      const json& steps = field(step, "pretokenizers", json::value_t::array, name + ".pretokenizers");
      for (size_t i = 0; i < steps.size(); ++i) {
        read_pre_tokenizer(steps[i], fmt::format("{}.pretokenizers[{}]", name, i), parts, byte_level);
      }
    } else if (type == "ByteLevel") {
      byte_level = true;
      parts.add_prefix_space = optional_bool(step, "add_prefix_space", false, name + ".add_prefix_space");
      if (optional_bool(step, "use_regex", true, name + ".use_regex")) {
        parts.splitters.push_back(std::make_unique<RegexSplitter>(kGpt2Pattern, false, file_ + ": " + name));
      }
    } else if (type == "Split") {
      read_split(step, name, parts);
    } else {
      fail("{}: {} has type \"{}\"; supported pre-tokenizers are Split, ByteLevel and Sequence", file_, name, type);
    }
  }

  void read_split(const json& step, const std::string& name, BpeTokenizerParts& parts) {
    const std::string behavior = optional_string(step, "behavior", "?", name + ".behavior");
    ROPEPP_CHECK(behavior == "Isolated", "{}: {}.behavior is \"{}\"; only \"Isolated\" is supported", file_, name,
                 behavior);
    ROPEPP_CHECK(!optional_bool(step, "invert", false, name + ".invert"),
                 "{}: {}.invert is true; only false is supported", file_, name);
    const json& pattern = field(step, "pattern", json::value_t::object, name + ".pattern");
    const bool is_regex = pattern.contains("Regex") && pattern["Regex"].is_string();
    const bool is_string = pattern.contains("String") && pattern["String"].is_string();
    ROPEPP_CHECK(is_regex || is_string, "{}: {}.pattern is {}; expected {{\"Regex\": ...}} or {{\"String\": ...}}",
                 file_, name, pattern.dump());
    const std::string text = pattern[is_regex ? "Regex" : "String"].get<std::string>();
    parts.splitters.push_back(std::make_unique<RegexSplitter>(text, !is_regex, file_ + ": " + name + ".pattern"));
  }

  void check_decoder() {
    if (!root_.contains("decoder") || root_["decoder"].is_null()) return;
    const std::string type = step_type(root_["decoder"], "decoder");
    ROPEPP_CHECK(type == "ByteLevel", "{}: decoder has type \"{}\"; expected ByteLevel for byte-level BPE", file_,
                 type);
  }

  void check_post_processor(const json& step, const std::string& name) {
    if (step.is_null()) return;
    const std::string type = step_type(step, name);
    if (type == "Sequence" && step.contains("processors") && step["processors"].is_array()) {
      for (size_t i = 0; i < step["processors"].size(); ++i) {
        check_post_processor(step["processors"][i], fmt::format("{}.processors[{}]", name, i));
      }
    } else if (type == "TemplateProcessing") {
      spdlog::warn("{}: {} (TemplateProcessing) is not applied: ropepp adds BOS/EOS only where the caller asks",
                   file_, name);
    } else {
      ROPEPP_CHECK(type == "ByteLevel", "{}: {} has type \"{}\"; supported are ByteLevel, TemplateProcessing "
                   "and Sequence", file_, name, type);
    }
  }

  void warn_ignored(const char* key) {
    if (root_.contains(key) && !root_[key].is_null()) {
      spdlog::warn("{}: {} settings are ignored; ropepp encodes whole texts", file_, key);
    }
  }

  std::filesystem::path path_;
  std::string file_;
  json root_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& path) {
  try {
    return TokenizerJsonReader(path).read();
  } catch (const json::exception& error) {
    // A field of an unexpected JSON type that no check above names.
    fail("{}: invalid field: {}", path.string(), error.what());
  }
}

}  // namespace ropepp
