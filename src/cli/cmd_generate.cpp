// `ropepp generate`: prompt -> streamed continuation, with prefill and decode
// speed on stderr.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "model/generation.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  int max_tokens = 128;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  bool greedy = false;
  bool bos = false;
  bool special = false;
  std::string cache_dtype = "f32";
  std::string weights_dtype = "f32";
  std::string json_path;
};

void report(const GenerationResult& stats, const std::string& json_path) {
  const double prefill_rate = stats.prefill_seconds > 0 ? stats.prompt_tokens / stats.prefill_seconds : 0.0;
  const int64_t decoded = std::max<int64_t>(0, stats.completion_tokens - 1);
  const double decode_rate = stats.decode_seconds > 0 ? decoded / stats.decode_seconds : 0.0;
  const char* stop_reason = stats.finish_reason == FinishReason::kStop ? "end of text" : "token limit";
  std::fprintf(stderr,
               "\n[prompt %lld tokens, prefill %.1f tokens/s | time to first token %.3f s | generated %lld tokens, "
               "decode %.1f tokens/s | stopped: %s]\n",
               static_cast<long long>(stats.prompt_tokens), prefill_rate, stats.first_token_seconds,
               static_cast<long long>(stats.completion_tokens), decode_rate, stop_reason);
  if (json_path.empty()) return;
  nlohmann::ordered_json json;
  json["prompt_tokens"] = stats.prompt_tokens;
  json["generated_tokens"] = stats.completion_tokens;
  json["prefill_seconds"] = stats.prefill_seconds;
  json["prefill_tokens_per_second"] = prefill_rate;
  json["time_to_first_token_seconds"] = stats.first_token_seconds;
  json["decode_seconds"] = stats.decode_seconds;
  json["decode_tokens_per_second"] = decode_rate;
  json["stop_reason"] = stop_reason;
  write_file_atomic(json_path, json.dump(2) + "\n");
}

int run_generate(const GenerateOptions& options) {
  GenerationRequest request;
  request.sampler.greedy = options.greedy;
  request.sampler.temperature = options.temperature;
  request.sampler.top_k = options.top_k;
  request.sampler.top_p = options.top_p;
  request.sampler.seed = options.seed;
  request.max_tokens = options.max_tokens;
  request.cache_type = options.cache_dtype == "bf16" ? CacheType::kBF16 : CacheType::kF32;

  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.tokenizer);
  ModelOptions model_options;
  model_options.weights_precision = parse_matmul_precision(options.weights_dtype);
  Model model = Model::load(options.model, model_options);
  const ModelConfig& config = model.config();
  ROPEPP_CHECK(tokenizer->vocab_size() <= config.vocab_size,
               "tokenizer {} has {} tokens but the model's vocabulary has {}: they do not belong together",
               options.tokenizer, tokenizer->vocab_size(), config.vocab_size);

  if (options.bos) {
    const std::optional<TokenId> bos = config.bos_token_id >= 0 ? std::optional<TokenId>(config.bos_token_id)
                                                                 : tokenizer->bos_id();
    ROPEPP_CHECK(bos.has_value(), "--bos given but neither the model config nor the tokenizer defines a BOS token");
    request.prompt.push_back(*bos);
  }
  const std::vector<TokenId> encoded = tokenizer->encode(options.prompt, options.special);
  request.prompt.insert(request.prompt.end(), encoded.begin(), encoded.end());
  ROPEPP_CHECK(!request.prompt.empty(), "the prompt encodes to no tokens: give a non-empty --prompt or --bos");

  request.stop_token_ids = config.eos_token_ids;
  if (tokenizer->eos_id().has_value()) request.stop_token_ids.push_back(*tokenizer->eos_id());

  // Text streams to stdout as soon as it is complete UTF-8.
  const GenerationResult result = generate_text(model, *tokenizer, request, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  report(result, options.json_path);
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* command =
      app.add_subcommand("generate", "Continue a prompt, streaming tokens to stdout as they are produced");
  command->add_option("--model", options->model, "Checkpoint folder (config.json + safetensors)")->required();
  command->add_option("--tokenizer", options->tokenizer,
                      "tokenizer.json (or its folder), a GPT-2 vocab.json + merges.txt folder, or \"byte\"")
      ->required();
  command->add_option("--prompt", options->prompt, "Prompt text (UTF-8)")->required();
  command->add_option("--max-tokens", options->max_tokens, "Maximum number of new tokens")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  command->add_option("--temperature", options->temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str();
  command->add_option("--top-k", options->top_k, "Sample among the k most likely tokens (0: all)")
      ->capture_default_str();
  command->add_option("--top-p", options->top_p, "Sample among the most likely tokens up to this total probability")
      ->capture_default_str();
  command->add_option("--seed", options->seed, "Random seed of the sampler")->capture_default_str();
  command->add_flag("--greedy", options->greedy, "Always take the most likely token");
  command->add_flag("--bos", options->bos, "Prepend the BOS token to the prompt");
  command->add_flag("--special", options->special, "Read special-token text in the prompt as special tokens");
  command->add_option("--cache-dtype", options->cache_dtype, "KV cache storage: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  command->add_option("--weights-dtype", options->weights_dtype, "Precision of the weight products: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  command->add_option("--json", options->json_path, "Also write the speed report as JSON to this file");
  commands.push_back(Command{command, [options] { return run_generate(*options); }});
}

}  // namespace ropepp::cli
