// `ropepp tokenize`: token ids of a JSON array of strings, as JSON on stdout.
// Other tools rely on this form; keep the options and the output as they are.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string input_json;
  bool bos = false;
  bool special = false;
};

// Reads the input: a JSON array of strings, from a file or "-" for stdin.
std::vector<std::string> read_strings(const std::string& path) {
  const std::string source_name = path == "-" ? "--input-json (standard input)" : path;
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::error_code ignored;  // an unreadable path fails below, with the message for a missing file
    ROPEPP_CHECK(!std::filesystem::is_directory(path, ignored),
                 "{}: is a folder; expected the file given by --input-json", source_name);
    std::ifstream in(path, std::ios::binary);
    ROPEPP_CHECK(in.good(), "{}: cannot open the file given by --input-json", source_name);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  nlohmann::json strings;
  try {
    strings = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    // The message may quote the input's bytes, which need not be valid UTF-8.
    fail("{}: invalid JSON: {}", source_name, printable_parse_error(error));
  }
  ROPEPP_CHECK(strings.is_array(), "{}: expected a JSON array of strings, found a JSON {}", source_name, strings.type_name());
  std::vector<std::string> result;
  result.reserve(strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    ROPEPP_CHECK(strings[i].is_string(), "{}: element {} is a JSON {}; expected a string", source_name, i,
                 strings[i].type_name());
    result.push_back(strings[i].get<std::string>());
  }
  return result;
}

int run_tokenize(const TokenizeOptions& options) {
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.tokenizer);
  std::optional<TokenId> bos;
  if (options.bos) {
    bos = tokenizer->bos_id();
    ROPEPP_CHECK(bos.has_value(), "--bos: tokenizer {} defines no BOS token; drop --bos", options.tokenizer);
  }

  nlohmann::json output = nlohmann::json::array();
  for (const std::string& text : read_strings(options.input_json)) {
    std::vector<TokenId> ids;
    if (bos) ids.push_back(*bos);
    const std::vector<TokenId> encoded = tokenizer->encode(text, options.special);
    ids.insert(ids.end(), encoded.begin(), encoded.end());
    output.push_back(std::move(ids));
  }
  std::cout << output.dump() << '\n';
  return std::cout.good() ? 0 : 1;
}

}  // namespace

void register_tokenize(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* command = app.add_subcommand(
      "tokenize", "Encode a JSON array of strings; prints a JSON array with one array of token ids per string");
  command
      ->add_option("--tokenizer", options->tokenizer,
                   "tokenizer.json file, folder with tokenizer.json or vocab.json + merges.txt, or \"byte\"")
      ->required();
  command->add_option("--input-json", options->input_json, "File with a JSON array of strings (\"-\": stdin)")
      ->required();
  command->add_flag("--bos", options->bos, "Prepend the BOS token (e.g. <|begin_of_text|>) to every string");
  command->add_flag("--special", options->special,
                    "Encode special-token text such as <|end_of_text|> as its special id (default: as plain text)");
  commands.push_back(Command{command, [options] { return run_tokenize(*options); }});
}

}  // namespace ropepp::cli
