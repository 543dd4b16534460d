// `ropepp serve`: an OpenAI-compatible HTTP API (/v1/completions) over one
// checkpoint. Runs until SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "model/model.h"
#include "serve/server.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string tokenizer;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string cache_dtype = "f32";
  std::string weights_dtype = "f32";
  int64_t max_context = 0;
  bool bos = false;
};

int run_serve(const ServeOptions& options) {
  // Block SIGINT and SIGTERM before any thread starts, so every server thread
  // inherits the mask and this thread alone receives them via sigwait().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  ROPEPP_CHECK(pthread_sigmask(SIG_BLOCK, &signals, nullptr) == 0, "failed to block SIGINT and SIGTERM");

  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.tokenizer);
  ModelOptions model_options;
  model_options.weights_precision = parse_matmul_precision(options.weights_dtype);
  Model model = Model::load(options.model, model_options);
  spdlog::info("loaded {} ({} parameters) with {}", options.model, model.config().parameter_count(),
               tokenizer->description());

  ServerOptions server_options;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.model_id = std::filesystem::absolute(options.model).lexically_normal().filename().string();
  if (server_options.model_id.empty()) {
    // A path given with a trailing slash has an empty filename.
    server_options.model_id =
        std::filesystem::absolute(options.model).lexically_normal().parent_path().filename().string();
  }
  server_options.max_context = options.max_context;
  server_options.bos = options.bos;
  server_options.cache_type = options.cache_dtype == "bf16" ? CacheType::kBF16 : CacheType::kF32;

  CompletionServer server(model, *tokenizer, server_options);
  server.start();

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, stopping", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  server.stop();
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* command = app.add_subcommand(
      "serve", "Serve a checkpoint over an OpenAI-compatible HTTP API (GET /health, GET /v1/models, "
               "POST /v1/completions); one generation at a time");
  command->add_option("--model", options->model, "Checkpoint folder (config.json + safetensors); its name is the model id")
      ->required();
  command->add_option("--tokenizer", options->tokenizer,
                      "tokenizer.json (or its folder), a GPT-2 vocab.json + merges.txt folder, or \"byte\"")
      ->required();
  command->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  command->add_option("--port", options->port, "TCP port to listen on (0: any free port, logged at start)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--cache-dtype", options->cache_dtype, "KV cache storage: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  command->add_option("--weights-dtype", options->weights_dtype, "Precision of the weight products: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  command->add_option("--max-context", options->max_context,
                      "Maximum tokens per request, prompt plus completion (0: the config's max_position_embeddings)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24))
      ->capture_default_str();
  command->add_flag("--bos", options->bos, "Prepend the BOS token to every prompt");
  commands.push_back(Command{command, [options] { return run_serve(*options); }});
}

}  // namespace ropepp::cli
