// `ropepp serve`: an OpenAI-compatible HTTP API over one model in memory.
//
//   GET  /health          {"status": "ok"}
//   GET  /v1/models       the one model, its id being the checkpoint folder name
//   POST /v1/completions  OpenAI's completion object, or Server-Sent Events
//                         ("data: {chunk}\n\n" ... "data: [DONE]\n\n") with "stream": true
//   POST /v1/chat/completions  the same for chat messages, templated as in serve/chat.h
//
// Requests are parsed and checked concurrently on httplib's thread pool, but
// generation holds one mutex around the model, so completions run one at a
// time and the others wait for the lock. Each open stream occupies one pool
// thread until it ends. NOTE: httplib 0.11.4 sizes its pool to max(8, cores - 1)
// threads, so further connections queue behind that many open streams. Errors use OpenAI's object
// {"error": {"message", "type", "param", "code"}}: 400 for invalid requests,
// 404 for unknown routes and models, 500 for internal failures.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/attention.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0: any free port, see CompletionServer::port()
  std::string model_id;       // the name clients send as "model"
  int64_t max_context = 0;    // prompt + new tokens at most; 0: the config's max_position_embeddings
  bool bos = false;           // prepend the BOS token to every prompt
  CacheType cache_type = CacheType::kF32;
  int64_t default_max_tokens = 16;  // OpenAI's default when a request gives no max_tokens
};

class CompletionServer {
 public:
  // Keeps references to model and tokenizer, which must outlive the server.
  // Throws ropepp::Error when the tokenizer has more ids than the model's
  // vocabulary, max_context is out of range, or options.bos is set but neither
  // the model config nor the tokenizer defines a BOS token.
  CompletionServer(Model& model, const Tokenizer& tokenizer, ServerOptions options);
  ~CompletionServer();  // stops the server

  CompletionServer(const CompletionServer&) = delete;
  CompletionServer& operator=(const CompletionServer&) = delete;

  // Binds the listening socket and returns the port (the chosen one when
  // options.port is 0). Throws ropepp::Error when binding fails.
  int bind();

  // Serves requests on the calling thread until stop(). Binds first if bind()
  // was not called.
  void listen();

  // Binds if needed and serves on a background thread; returns once the
  // server accepts connections (or throws ropepp::Error after 10 s).
  void start();

  // Stops accepting connections, cancels a running generation at its next
  // token, and joins the background thread of start(). Safe to call twice.
  void stop();

  int port() const;
  const ServerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ropepp
