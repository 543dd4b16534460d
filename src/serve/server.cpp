#include "serve/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "serve/chat.h"
#include "serve/completion_request.h"
#include "model/generation.h"
#include "tokenizer/utf8.h"

namespace ropepp {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Per-request figures for the access log. httplib runs routing, the handler,
// a chunked content provider and the logger of one request on the same pool
// thread, one after another, so a thread-local record needs no locking.
struct RequestRecord {
  Clock::time_point start;
  bool started = false;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};
thread_local RequestRecord current_request;

json error_body(const std::string& message, const std::string& type, const std::string& param) {
  json error = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) error["param"] = param;
  return json{{"error", error}};
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& type = "invalid_request_error", const std::string& param = "") {
  res.status = status;
  res.set_content(error_body(message, type, param).dump(), "application/json");
}

// One entry of "choices": completions carry the text as "text", chat
// responses as message.content and chat stream chunks as delta.content.
json make_choice(const std::string& text, const json& finish_reason, bool chat, bool stream_chunk) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
  if (!chat) {
    choice["text"] = text;
  } else if (!stream_chunk) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else if (finish_reason.is_null()) {
    choice["delta"] = {{"content", text}};
  } else {
    choice["delta"] = json::object();
  }
  return choice;
}

const char* object_name(bool chat, bool stream_chunk) {
  if (!chat) return "text_completion";
  return stream_chunk ? "chat.completion.chunk" : "chat.completion";
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct CompletionServer::Impl {
  Model& model;
  const Tokenizer& tokenizer;
  ServerOptions options;
  std::vector<int32_t> stop_token_ids;
  std::optional<TokenId> bos_id;  // set when options.bos is
  int64_t created = unix_seconds();

  httplib::Server http;
  int bound_port = -1;
  std::thread listen_thread;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> request_counter{0};

  // Held for the whole of each generation: Model::forward is not reentrant.
  std::mutex model_mutex;

  Impl(Model& model_in, const Tokenizer& tokenizer_in, ServerOptions options_in)
      : model(model_in), tokenizer(tokenizer_in), options(std::move(options_in)) {}

  void install_routes();
  // Serves /v1/completions, or /v1/chat/completions when `chat` is true.
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void stream_completion(httplib::Response& res, std::shared_ptr<GenerationRequest> generation,
                         std::string id, std::string model_name, bool chat);
  std::string next_completion_id(bool chat) {
    return fmt::format("{}-{:x}-{}", chat ? "chatcmpl" : "cmpl", static_cast<uint64_t>(created),
                       request_counter.fetch_add(1));
  }
};

CompletionServer::CompletionServer(Model& model, const Tokenizer& tokenizer, ServerOptions options)
    : impl_(std::make_unique<Impl>(model, tokenizer, std::move(options))) {
  const ModelConfig& config = model.config();
  ROPEPP_CHECK(tokenizer.vocab_size() <= config.vocab_size,
               "the tokenizer has {} tokens but the model's vocabulary has {}: they do not belong together",
               tokenizer.vocab_size(), config.vocab_size);
  ServerOptions& opts = impl_->options;
  if (opts.max_context == 0) opts.max_context = config.max_position_embeddings;
  ROPEPP_CHECK(opts.max_context >= 2, "max_context must be at least 2 tokens (one prompt, one new), got {}",
               opts.max_context);
  ROPEPP_CHECK(opts.default_max_tokens >= 1, "default_max_tokens must be at least 1, got {}",
               opts.default_max_tokens);
  if (opts.model_id.empty()) opts.model_id = "ropepp";

  if (opts.bos) {
    impl_->bos_id = config.bos_token_id >= 0 ? std::optional<TokenId>(config.bos_token_id) : tokenizer.bos_id();
    ROPEPP_CHECK(impl_->bos_id.has_value(),
                 "BOS requested but neither the model config nor the tokenizer defines a BOS token: drop --bos");
  }
  impl_->stop_token_ids = config.eos_token_ids;
  if (tokenizer.eos_id().has_value()) impl_->stop_token_ids.push_back(*tokenizer.eos_id());
  impl_->install_routes();
}

CompletionServer::~CompletionServer() { stop(); }

int CompletionServer::bind() {
  Impl& impl = *impl_;
  if (impl.bound_port >= 0) return impl.bound_port;
  if (impl.options.port == 0) {
    impl.bound_port = impl.http.bind_to_any_port(impl.options.host);
  } else if (impl.http.bind_to_port(impl.options.host, impl.options.port)) {
    impl.bound_port = impl.options.port;
  }
  ROPEPP_CHECK(impl.bound_port > 0, "failed to bind {}:{}: the address is invalid or the port is in use",
               impl.options.host, impl.options.port);
  return impl.bound_port;
}

void CompletionServer::listen() {
  bind();
  spdlog::info("serving {} on http://{}:{} (context {} tokens, one generation at a time)", impl_->options.model_id,
               impl_->options.host, impl_->bound_port, impl_->options.max_context);
  if (!impl_->http.listen_after_bind() && !impl_->stopping) {
    fail("the HTTP server on {}:{} stopped with an error", impl_->options.host, impl_->bound_port);
  }
  spdlog::info("server on port {} stopped", impl_->bound_port);
}

void CompletionServer::start() {
  bind();
  impl_->listen_thread = std::thread([this] {
    try {
      listen();
    } catch (const std::exception& error) {
      spdlog::error("{}", error.what());
    }
  });
  // httplib 0.11.4 has no wait_until_ready(): poll is_running().
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!impl_->http.is_running()) {
    if (Clock::now() > deadline) {
      stop();
      fail("the HTTP server on port {} did not start within 10 s", impl_->bound_port);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void CompletionServer::stop() {
  impl_->stopping = true;
  impl_->http.stop();
  if (impl_->listen_thread.joinable()) impl_->listen_thread.join();
}

int CompletionServer::port() const { return impl_->bound_port; }
const ServerOptions& CompletionServer::options() const { return impl_->options; }

void CompletionServer::Impl::install_routes() {
  http.set_payload_max_length(16u << 20);

  http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    current_request = RequestRecord{Clock::now(), true, 0, 0};
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    const RequestRecord record = current_request;
    current_request = RequestRecord{};
    const double ms =
        record.started ? std::chrono::duration<double, std::milli>(Clock::now() - record.start).count() : 0.0;
    spdlog::info("{} {} {} prompt_tokens={} completion_tokens={} {:.1f} ms", req.method, req.path, res.status,
                 record.prompt_tokens, record.completion_tokens, ms);
  });

  // Unmatched routes leave the body empty, so this handler fills in the error object.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string message = res.status == 404 ? fmt::format("no route for {} {}", req.method, req.path)
                                                   : fmt::format("HTTP error {}", res.status);
    send_error(res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  }));

  http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr exception) {
    std::string message = "unknown exception";
    try {
      std::rethrow_exception(exception);
    } catch (const std::exception& error) {
      message = error.what();
    } catch (...) {
    }
    spdlog::error("{} {} failed: {}", req.method, req.path, message);
    send_error(res, 500, message, "server_error");
  });

  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"status", "ok"}}.dump(), "application/json");
  });

  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json entry = {{"id", options.model_id}, {"object", "model"}, {"created", created}, {"owned_by", "ropepp"}};
    res.set_content(json{{"object", "list"}, {"data", json::array({entry})}}.dump(), "application/json");
  });

  http.Post("/v1/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res, false); });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res, true); });
}

void CompletionServer::Impl::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto generation = std::make_shared<GenerationRequest>();
  CompletionRequest request;
  ChatPrompt chat_prompt;
  try {
    request = parse_completion_request(req.body, chat);
    if (!request.model.empty() && request.model != options.model_id) {
      throw RequestError(404, "model",
                         fmt::format("the model '{}' does not exist: this server serves '{}'", request.model,
                                     options.model_id),
                         "invalid_request_error");
    }

    const std::string prompt_field = chat ? "messages" : "prompt";
    try {
      if (chat) {
        chat_prompt = build_chat_prompt(tokenizer, request.messages, bos_id);
        generation->prompt = chat_prompt.tokens;
      } else {
        if (bos_id.has_value()) generation->prompt.push_back(*bos_id);
        const std::vector<TokenId> encoded = tokenizer.encode(request.prompt);
        generation->prompt.insert(generation->prompt.end(), encoded.begin(), encoded.end());
      }
    } catch (const RequestError&) {
      throw;
    } catch (const Error& error) {
      throw RequestError(400, prompt_field, fmt::format("'{}' could not be tokenized: {}", prompt_field, error.what()));
    }
    const auto prompt_tokens = static_cast<int64_t>(generation->prompt.size());
    current_request.prompt_tokens = prompt_tokens;
    if (prompt_tokens >= options.max_context) {
      throw RequestError(400, prompt_field,
                         fmt::format("the prompt has {} tokens but the context is {} tokens, which leaves no room "
                                     "for new tokens: shorten the prompt",
                                     prompt_tokens, options.max_context));
    }
    const int64_t room = options.max_context - prompt_tokens;
    if (request.max_tokens.has_value() && *request.max_tokens > room) {
      throw RequestError(400, "max_tokens",
                         fmt::format("max_tokens {} plus the prompt's {} tokens exceeds the context of {} tokens: "
                                     "request at most {} tokens",
                                     *request.max_tokens, prompt_tokens, options.max_context, room));
    }
    generation->max_tokens = request.max_tokens.value_or(std::min(options.default_max_tokens, room));
  } catch (const RequestError& error) {
    spdlog::warn("rejected {} {}: {}", req.method, req.path, error.what());
    send_error(res, error.status(), error.what(), error.type(), error.param());
    return;
  }

  generation->sampler = request.sampler;
  if (!request.seed_given) generation->sampler.seed = std::random_device{}();
  generation->stop_strings = request.stop;
  generation->stop_token_ids = stop_token_ids;
  generation->stop_strings.insert(generation->stop_strings.end(), chat_prompt.stop_strings.begin(),
                                  chat_prompt.stop_strings.end());
  generation->stop_token_ids.insert(generation->stop_token_ids.end(), chat_prompt.stop_token_ids.begin(),
                                    chat_prompt.stop_token_ids.end());
  generation->cache_type = options.cache_type;

  const std::string id = next_completion_id(chat);
  const std::string model_name = options.model_id;
  if (request.stream) {
    stream_completion(res, generation, id, model_name, chat);
    return;
  }

  GenerationResult result;
  {
    const std::lock_guard<std::mutex> lock(model_mutex);
    result = generate_text(model, tokenizer, *generation, [this](std::string_view) { return !stopping.load(); });
  }
  current_request.completion_tokens = result.completion_tokens;
  if (result.finish_reason == FinishReason::kCancelled) {
    send_error(res, 503, "the server is shutting down", "server_error");
    return;
  }
  // Generated bytes need not be valid UTF-8 (a model can emit any byte) but
  // JSON strings must be, so invalid sequences become U+FFFD here and in streams.
  const auto prompt_tokens = static_cast<int64_t>(generation->prompt.size());
  const json choice =
      make_choice(replace_invalid_utf8(result.text), finish_reason_name(result.finish_reason), chat, false);
  const json body = {{"id", id},
                     {"object", object_name(chat, false)},
                     {"created", unix_seconds()},
                     {"model", model_name},
                     {"choices", json::array({choice})},
                     {"usage",
                      {{"prompt_tokens", prompt_tokens},
                       {"completion_tokens", result.completion_tokens},
                       {"total_tokens", prompt_tokens + result.completion_tokens}}}};
  res.set_content(body.dump(), "application/json");
}

// Sends the completion as Server-Sent Events: one chunk per piece of text
// (finish_reason null), a last chunk with the finish_reason and usage, then
// "data: [DONE]". A chat stream starts with a chunk whose delta is
// {"role": "assistant", "content": ""}. Generation runs inside the content provider, on the pool
// thread of this connection, so the model lock is held only while streaming.
void CompletionServer::Impl::stream_completion(httplib::Response& res, std::shared_ptr<GenerationRequest> generation,
                                               std::string id, std::string model_name, bool chat) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [this, generation, id, model_name, chat](size_t, httplib::DataSink& sink) {
        const int64_t created_at = unix_seconds();
        auto chunk = [&](const std::string& text, const json& finish_reason) {
          return json{{"id", id},
                      {"object", object_name(chat, true)},
                      {"created", created_at},
                      {"model", model_name},
                      {"choices", json::array({make_choice(text, finish_reason, chat, true)})}};
        };
        auto send = [&](const std::string& data) {
          const std::string event = "data: " + data + "\n\n";
          return sink.write(event.data(), event.size());
        };

        try {
          if (chat) {
            json first = chunk("", nullptr);
            first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
            if (!send(first.dump())) return false;
          }
          GenerationResult result;
          {
            const std::lock_guard<std::mutex> lock(model_mutex);
            result = generate_text(model, tokenizer, *generation, [&](std::string_view text) {
              return !stopping.load() && send(chunk(replace_invalid_utf8(text), nullptr).dump());
            });
          }
          current_request.completion_tokens = result.completion_tokens;
          if (result.finish_reason == FinishReason::kCancelled) {
            spdlog::warn("stream {} cancelled after {} tokens: the client disconnected or the server is stopping",
                         id, result.completion_tokens);
            return false;
          }
          const auto prompt_tokens = static_cast<int64_t>(generation->prompt.size());
          json last = chunk("", finish_reason_name(result.finish_reason));
          last["usage"] = {{"prompt_tokens", prompt_tokens},
                           {"completion_tokens", result.completion_tokens},
                           {"total_tokens", prompt_tokens + result.completion_tokens}};
          if (send(last.dump()) && send("[DONE]")) sink.done();
        } catch (const std::exception& error) {
          // The status line is already sent, so the error goes into the stream.
          spdlog::error("stream {} failed: {}", id, error.what());
          if (send(error_body(error.what(), "server_error", "").dump())) sink.done();
        }
        return true;
      });
}

}  // namespace ropepp
