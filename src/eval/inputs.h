// Inputs shared by the evaluation commands: models, texts and the position
// scalings applied at inference.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kernels/rope.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::eval {

// A text file read whole, with its tokens (no BOS).
struct TextDocument {
  std::filesystem::path path;
  int64_t bytes = 0;
  std::vector<int32_t> tokens;
};

// Reads each path (a file, or every regular file of a folder in name order)
// and encodes it. Invalid UTF-8 is an error naming the file. Throws
// ropepp::Error when a path is missing or contains no text.
std::vector<TextDocument> read_text_documents(const std::vector<std::string>& paths, const Tokenizer& tokenizer);

// All documents' tokens back to back (for haystacks and fixed-length chunks).
std::vector<int32_t> concatenate_tokens(const std::vector<TextDocument>& documents);

// A position scaling applied at inference, parsed from
//   "none" | "ntk:THETA" | "linear:FACTOR" | "yarn-paper:FACTOR" | "yarn-hf:FACTOR"
// where ntk replaces rope_theta. YaRN's original context is the training length.
struct InferenceScaling {
  std::string spec = "none";
  std::optional<double> theta;
  RopeScaling scaling;

  // The model's rotary parameters with this scaling applied; nullopt for "none"
  // (the model's own settings).
  std::optional<RopeParams> apply(const ModelConfig& config) const;
};

// Throws ropepp::Error naming the spec and the accepted forms.
InferenceScaling parse_inference_scaling(const std::string& spec, int64_t training_length);

// A loaded model with the name shown in tables and legends.
struct NamedModel {
  std::string name;
  std::filesystem::path directory;
  Model model;
};

// Loads each checkpoint folder; names are `names[i]` when given, else the
// folder's name (with its parent's when two folders share a name).
std::vector<NamedModel> load_models(const std::vector<std::string>& directories,
                                    const std::vector<std::string>& names);

// Checks that a tokenizer fits a model: every tokenizer id below the model's
// vocabulary. Throws ropepp::Error naming both sizes.
void check_tokenizer_fits(const Tokenizer& tokenizer, const NamedModel& model);

// The name with every character other than letters, digits, '-', '_' and '.'
// replaced by '_', for use in file names.
std::string file_safe_name(const std::string& name);

// Parses "a,b,c" into numbers; throws ropepp::Error naming `source` (a flag or file).
std::vector<double> parse_number_list(const std::string& text, const std::string& source);
std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& source);

}  // namespace ropepp::eval
