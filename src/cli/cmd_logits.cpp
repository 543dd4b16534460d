// `ropepp logits`: one prefill over a token sequence, logits written as .npy.
// Other tools call this command, so its flags keep their form.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/json_file.h"
#include "io/npy.h"
#include "model/model.h"

namespace ropepp::cli {
namespace {

struct LogitsOptions {
  std::string model;
  std::string tokens_file;
  std::string positions_file;
  std::string out;
  std::string weights_dtype = "f32";
};

// Reads a JSON array of integers in [minimum, int32 max]. `description` names
// the values in errors.
std::vector<int32_t> read_int_array(const std::string& path, const char* description, int64_t minimum) {
  std::error_code ignored;  // an unreadable path fails below, with the message for a missing file
  ROPEPP_CHECK(!std::filesystem::is_directory(path, ignored),
               "{}: is a folder; expected a file with a JSON array of {}", path, description);
  std::ifstream stream(path, std::ios::binary);
  ROPEPP_CHECK(stream.good(), "{}: file not found or not readable (expected a JSON array of {})", path, description);
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& error) {
    fail("{}: invalid JSON at byte {}: expected an array of {}", path, error.byte, description);
  } catch (const nlohmann::json::exception& error) {
    // nlohmann::json reports a number too large for a double (e.g. 1e999) as out_of_range.
    fail("{}: invalid JSON: {} (expected an array of {})", path, printable_parse_error(error), description);
  }
  ROPEPP_CHECK(json.is_array(), "{}: expected a JSON array of {}, found a {}", path, description, json.type_name());
  std::vector<int32_t> values;
  values.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& item = json[i];
    ROPEPP_CHECK(item.is_number_integer(), "{}: element {} is {}, expected an integer ({})", path, i, item.dump(),
                 description);
    const bool in_range = item.is_number_unsigned()
                              ? item.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max())
                              : item.get<int64_t>() >= minimum;
    ROPEPP_CHECK(in_range, "{}: element {} = {} is outside {}..{} ({})", path, i, item.dump(), minimum,
                 std::numeric_limits<int32_t>::max(), description);
    values.push_back(static_cast<int32_t>(item.get<int64_t>()));
  }
  return values;
}

// Checks --out before the model runs, so that a bad path fails at once and no
// temporary file is left behind.
void check_output_path(const std::string& out) {
  namespace fs = std::filesystem;
  const fs::path path(out);
  std::error_code ignored;  // a path that cannot be inspected fails when the file is written
  ROPEPP_CHECK(!fs::is_directory(path, ignored),
               "--out {}: is a folder; expected a .npy file path such as {}/logits.npy", out, out);
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  ROPEPP_CHECK(fs::is_directory(folder, ignored), "--out {}: folder {} does not exist; create it first", out,
               folder.string());
}

int run_logits(const LogitsOptions& options) {
  check_output_path(options.out);
  const std::vector<int32_t> tokens = read_int_array(options.tokens_file, "token ids", 0);
  ROPEPP_CHECK(!tokens.empty(), "{}: the token array is empty; give at least one token id", options.tokens_file);
  std::vector<int32_t> positions;
  if (!options.positions_file.empty()) {
    positions = read_int_array(options.positions_file, "positions", 0);
    ROPEPP_CHECK(positions.size() == tokens.size(), "{} has {} positions but {} has {} tokens: expected one each",
                 options.positions_file, positions.size(), options.tokens_file, tokens.size());
  }

  ModelOptions model_options;
  model_options.weights_precision = parse_matmul_precision(options.weights_dtype);
  Model model = Model::load(options.model, model_options);
  const int vocab = model.config().vocab_size;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ROPEPP_CHECK(tokens[i] < vocab, "{}: token {} at index {} is outside the model's vocabulary 0..{}",
                 options.tokens_file, tokens[i], i, vocab - 1);
  }

  std::vector<float> logits(tokens.size() * static_cast<size_t>(vocab));
  ForwardInput input;
  input.tokens = tokens;
  input.positions = positions;
  model.forward(input, logits.data());
  write_npy_f32(options.out, logits.data(), {static_cast<int64_t>(tokens.size()), vocab});
  spdlog::info("wrote logits [{}, {}] to {}", tokens.size(), vocab, options.out);
  return 0;
}

}  // namespace

void register_logits(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<LogitsOptions>();
  CLI::App* command = app.add_subcommand("logits", "Run one prefill and write float32 logits [T, vocab] as .npy");
  command->add_option("--model", options->model, "Checkpoint folder (config.json + safetensors)")->required();
  command->add_option("--tokens-file", options->tokens_file, "JSON array of token ids")->required();
  command->add_option("--positions-file", options->positions_file,
                      "JSON array of positions, one per token (default 0..T-1)");
  command->add_option("--out", options->out, "Output .npy file (float32, C order)")->required();
  command->add_option("--weights-dtype", options->weights_dtype, "Precision of the weight products: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  commands.push_back(Command{command, [options] { return run_logits(*options); }});
}

}  // namespace ropepp::cli
