#include "eval/inputs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/log.h"

namespace ropepp::eval {
namespace fs = std::filesystem;

namespace {

std::string read_whole_file(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  ROPEPP_CHECK(stream.good(), "{}: file not found or not readable", path.string());
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

double parse_number(const std::string& text, const std::string& source) {
  size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ROPEPP_CHECK(used == text.size() && !text.empty() && std::isfinite(value), "{}: '{}' is not a number", source, text);
  return value;
}

}  // namespace

std::vector<TextDocument> read_text_documents(const std::vector<std::string>& paths, const Tokenizer& tokenizer) {
  ROPEPP_CHECK(!paths.empty(), "no text given: pass at least one text file or folder");
  std::vector<fs::path> files;
  for (const std::string& path : paths) {
    ROPEPP_CHECK(fs::exists(path), "{}: text file or folder not found", path);
    if (fs::is_directory(path)) {
      std::vector<fs::path> inside;
      for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_regular_file()) inside.push_back(entry.path());
      }
      std::sort(inside.begin(), inside.end());
      ROPEPP_CHECK(!inside.empty(), "{}: the folder holds no files", path);
      files.insert(files.end(), inside.begin(), inside.end());
    } else {
      files.emplace_back(path);
    }
  }

  std::vector<TextDocument> documents;
  for (const fs::path& file : files) {
    const std::string text = read_whole_file(file);
    ROPEPP_CHECK(!text.empty(), "{}: the file is empty", file.string());
    TextDocument document;
    document.path = file;
    document.bytes = static_cast<int64_t>(text.size());
    try {
      document.tokens = tokenizer.encode(text);
    } catch (const Error& error) {
      fail("{}: cannot tokenize: {}", file.string(), error.what());
    }
    documents.push_back(std::move(document));
  }
  return documents;
}

std::vector<int32_t> concatenate_tokens(const std::vector<TextDocument>& documents) {
  std::vector<int32_t> tokens;
  for (const TextDocument& document : documents) {
    tokens.insert(tokens.end(), document.tokens.begin(), document.tokens.end());
  }
  return tokens;
}

std::optional<RopeParams> InferenceScaling::apply(const ModelConfig& config) const {
  if (!theta && scaling.type == RopeScalingType::kNone) return std::nullopt;
  RopeParams params = config.rope_params();
  if (theta) params.theta = *theta;
  if (scaling.type != RopeScalingType::kNone) params.scaling = scaling;
  return params;
}

InferenceScaling parse_inference_scaling(const std::string& spec, int64_t training_length) {
  InferenceScaling result;
  result.spec = spec;
  if (spec == "none") return result;
  const size_t colon = spec.find(':');
  ROPEPP_CHECK(colon != std::string::npos,
               "invalid scaling '{}': expected none, ntk:THETA, linear:FACTOR, yarn-paper:FACTOR or yarn-hf:FACTOR",
               spec);
  const std::string kind = spec.substr(0, colon);
  const double value = parse_number(spec.substr(colon + 1), "scaling '" + spec + "'");
  if (kind == "ntk") {
    ROPEPP_CHECK(value > 1.0, "invalid scaling '{}': rope_theta must be > 1", spec);
    result.theta = value;
    return result;
  }
  ROPEPP_CHECK(kind == "linear" || kind == "yarn-paper" || kind == "yarn-hf",
               "invalid scaling '{}': expected none, ntk:THETA, linear:FACTOR, yarn-paper:FACTOR or yarn-hf:FACTOR",
               spec);
  ROPEPP_CHECK(value >= 1.0, "invalid scaling '{}': the factor must be >= 1", spec);
  result.scaling.type = parse_rope_scaling_type(kind);
  result.scaling.factor = value;
  result.scaling.original_max_position = training_length;
  return result;
}

std::vector<NamedModel> load_models(const std::vector<std::string>& directories,
                                    const std::vector<std::string>& names) {
  ROPEPP_CHECK(!directories.empty(), "no model given: pass --model DIR (repeat it to compare models)");
  ROPEPP_CHECK(names.empty() || names.size() == directories.size(),
               "{} names given for {} models: pass one --name per --model, or none", names.size(),
               directories.size());
  std::map<std::string, int> name_counts;
  for (const std::string& directory : directories) {
    name_counts[fs::path(directory).lexically_normal().filename().string()] += 1;
  }
  std::vector<NamedModel> models;
  for (size_t i = 0; i < directories.size(); ++i) {
    const fs::path directory = fs::path(directories[i]).lexically_normal();
    std::string name = names.empty() ? directory.filename().string() : names[i];
    if (names.empty() && name_counts[name] > 1) name = directory.parent_path().filename().string() + "/" + name;
    spdlog::info("loading model {} from {}", name, directory.string());
    models.push_back({name, directory, Model::load(directory)});
  }
  return models;
}

void check_tokenizer_fits(const Tokenizer& tokenizer, const NamedModel& model) {
  ROPEPP_CHECK(tokenizer.vocab_size() <= model.model.config().vocab_size,
               "model {} has a vocabulary of {} ids but the tokenizer ({}) produces ids up to {}: pass the tokenizer "
               "the model was trained with (--tokenizer)",
               model.name, model.model.config().vocab_size, tokenizer.description(), tokenizer.vocab_size() - 1);
}

std::string file_safe_name(const std::string& name) {
  std::string safe = name;
  for (char& c : safe) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (!keep) c = '_';
  }
  return safe;
}

std::vector<double> parse_number_list(const std::string& text, const std::string& source) {
  std::vector<double> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) values.push_back(parse_number(item, source));
  ROPEPP_CHECK(!values.empty(), "{}: expected a comma-separated list of numbers, found '{}'", source, text);
  return values;
}

std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& source) {
  std::vector<int64_t> values;
  for (double value : parse_number_list(text, source)) {
    ROPEPP_CHECK(value == std::floor(value) && std::abs(value) < 9e15, "{}: '{}' is not an integer", source, value);
    values.push_back(static_cast<int64_t>(value));
  }
  return values;
}

}  // namespace ropepp::eval
