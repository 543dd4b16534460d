// The HTTP API end to end: a CompletionServer on 127.0.0.1 with an ephemeral
// port over a tiny random model, queried with httplib::Client.
#include <gtest/gtest.h>

#include <httplib.h>

#include <chrono>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/server.h"
#include "serve_test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace ropepp {
namespace {

using nlohmann::json;

constexpr int64_t kMaxContext = 64;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = std::make_unique<Model>(test::tiny_serving_model());
    tokenizer_ = load_tokenizer("byte");
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.model_id = "tiny";
    options.max_context = kMaxContext;
    server_ = std::make_unique<CompletionServer>(*model_, *tokenizer_, options);
    server_->start();
    ASSERT_GT(server_->port(), 0);
  }

  void TearDown() override { server_->stop(); }

  httplib::Client client() const {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_connection_timeout(std::chrono::seconds(10));
    client.set_read_timeout(std::chrono::seconds(30));
    return client;
  }

  // POSTs a JSON body to /v1/completions. The status is -1 when no response arrived.
  std::pair<int, json> complete(const std::string& body) const { return complete_at("/v1/completions", body); }

  std::pair<int, json> complete_at(const std::string& path, const std::string& body) const {
    httplib::Client http = client();
    const httplib::Result result = http.Post(path, body, "application/json");
    if (!result) return {-1, json()};
    return {result->status, json::parse(result->body, nullptr, false)};
  }

  // The reference text as the server sends it: invalid UTF-8 replaced.
  std::string expected_greedy_text(const std::string& prompt, int64_t max_tokens, std::string* finish_reason) {
    const test::ReferenceGeneration reference = test::greedy_reference(*model_, *tokenizer_, prompt, max_tokens);
    if (finish_reason != nullptr) *finish_reason = reference.finish_reason;
    return replace_invalid_utf8(reference.text);
  }

  // Expects status 400 with an OpenAI error object naming `param`.
  void expect_rejected(const json& request, const std::string& param) {
    SCOPED_TRACE(request.dump());
    const auto [status, body] = complete(request.dump());
    EXPECT_EQ(status, 400);
    ASSERT_TRUE(body.is_object());
    ASSERT_TRUE(body.contains("error"));
    EXPECT_TRUE(body["error"]["message"].is_string());
    EXPECT_EQ(body["error"]["type"], "invalid_request_error");
    if (param.empty()) {
      EXPECT_TRUE(body["error"]["param"].is_null());
    } else {
      EXPECT_EQ(body["error"]["param"], param);
    }
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<CompletionServer> server_;
};

TEST_F(ServerTest, HealthReturnsOk) {
  httplib::Client http = client();
  const httplib::Result result = http.Get("/health");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(json::parse(result->body)["status"], "ok");
}

TEST_F(ServerTest, ModelsListsTheModel) {
  httplib::Client http = client();
  const httplib::Result result = http.Get("/v1/models");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  const json body = json::parse(result->body);
  EXPECT_EQ(body["object"], "list");
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["id"], "tiny");
  EXPECT_EQ(body["data"][0]["object"], "model");
}

TEST_F(ServerTest, UnknownRouteIs404) {
  httplib::Client http = client();
  const httplib::Result result = http.Get("/v1/nothing");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  const json body = json::parse(result->body, nullptr, false);
  ASSERT_TRUE(body.is_object());
  EXPECT_TRUE(body["error"]["message"].is_string());
}

TEST_F(ServerTest, GreedyCompletionMatchesLibrary) {
  const auto [status, body] =
      complete(R"({"model": "tiny", "prompt": "Hello", "max_tokens": 12, "temperature": 0})");
  ASSERT_EQ(status, 200);
  std::string finish_reason;
  const std::string expected = expected_greedy_text("Hello", 12, &finish_reason);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "tiny");
  EXPECT_TRUE(body["id"].is_string());
  EXPECT_TRUE(body["created"].is_number_integer());
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["text"], expected);
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_EQ(body["choices"][0]["finish_reason"], finish_reason);
  EXPECT_EQ(body["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(body["usage"]["total_tokens"],
            body["usage"]["prompt_tokens"].get<int>() + body["usage"]["completion_tokens"].get<int>());
}

// Stop token 257 must not be the greedy choice in the first tokens, or the
// length limit is never reached: the test model's seed is fixed, so the check
// passes or fails the same way every run.
TEST_F(ServerTest, MaxTokensEndsWithLength) {
  std::string finish_reason;
  expected_greedy_text("Hello", 3, &finish_reason);
  ASSERT_EQ(finish_reason, "length") << "the test model samples its stop token early; pick another seed";
  const auto [status, body] = complete(R"({"prompt": "Hello", "max_tokens": 3, "temperature": 0})");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 3);
}

TEST_F(ServerTest, StopStringCutsText) {
  const test::ReferenceGeneration reference = test::greedy_reference(*model_, *tokenizer_, "Hello", 12);
  // A stop string taken from the middle of the generated bytes, where they
  // are valid UTF-8 (JSON strings must be). The expected text is everything
  // before its first occurrence.
  std::string stop;
  for (size_t i = 2; i + 2 <= reference.text.size() && stop.empty(); ++i) {
    const std::string candidate = reference.text.substr(i, 2);
    if (find_invalid_utf8(candidate) == std::string::npos) stop = candidate;
  }
  ASSERT_FALSE(stop.empty()) << "the test model's greedy text has no valid 2-byte piece to stop at";
  const std::string expected = replace_invalid_utf8(reference.text.substr(0, reference.text.find(stop)));
  const json request = {{"prompt", "Hello"}, {"max_tokens", 12}, {"temperature", 0}, {"stop", {"zzzz", stop}}};
  const auto [status, body] = complete(request.dump());
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["choices"][0]["text"], expected);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
}

TEST_F(ServerTest, StreamConcatenatesToCompletion) {
  const std::string request = R"({"prompt": "Hello", "max_tokens": 12, "temperature": 0, "stream": true})";
  httplib::Client http = client();
  std::string received;
  const httplib::Result result =
      http.Post("/v1/completions", httplib::Headers{}, request.data(), request.size(), "application/json");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/event-stream");
  received = result->body;

  // Split the events: each is "data: <payload>\n\n".
  std::vector<std::string> payloads;
  size_t begin = 0;
  while (begin < received.size()) {
    const size_t end = received.find("\n\n", begin);
    ASSERT_NE(end, std::string::npos) << "unterminated event in: " << received;
    const std::string event = received.substr(begin, end - begin);
    ASSERT_EQ(event.rfind("data: ", 0), 0u) << event;
    payloads.push_back(event.substr(6));
    begin = end + 2;
  }
  ASSERT_GE(payloads.size(), 2u);
  EXPECT_EQ(payloads.back(), "[DONE]");

  std::string text;
  std::string finish_reason;
  for (size_t i = 0; i + 1 < payloads.size(); ++i) {
    const json chunk = json::parse(payloads[i]);
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) {
      EXPECT_EQ(i + 2, payloads.size()) << "finish_reason before the last chunk";
      finish_reason = chunk["choices"][0]["finish_reason"];
    }
  }
  const auto [status, body] = complete(R"({"prompt": "Hello", "max_tokens": 12, "temperature": 0})");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(text, body["choices"][0]["text"]);
  EXPECT_EQ(finish_reason, body["choices"][0]["finish_reason"]);
}

TEST_F(ServerTest, SeededSamplingRepeats) {
  const std::string request = R"({"prompt": "Hi", "max_tokens": 8, "temperature": 0.9, "top_p": 0.9, "top_k": 20, "seed": 5})";
  const auto [status_a, body_a] = complete(request);
  const auto [status_b, body_b] = complete(request);
  ASSERT_EQ(status_a, 200);
  ASSERT_EQ(status_b, 200);
  EXPECT_EQ(body_a["choices"][0]["text"], body_b["choices"][0]["text"]);
}

TEST_F(ServerTest, PromptFillingContextAccepted) {
  const json request = {{"prompt", std::string(kMaxContext - 1, 'a')}, {"max_tokens", 1}, {"temperature", 0}};
  const auto [status, body] = complete(request.dump());
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["usage"]["prompt_tokens"], kMaxContext - 1);
  EXPECT_EQ(body["usage"]["completion_tokens"], 1);
}

// Without max_tokens the server generates at most 16 tokens (OpenAI's
// default), fewer when the context has less room.
TEST_F(ServerTest, DefaultMaxTokensFitsContext) {
  const json request = {{"prompt", std::string(kMaxContext - 4, 'a')}, {"temperature", 0}};
  const auto [status, body] = complete(request.dump());
  ASSERT_EQ(status, 200);
  EXPECT_LE(body["usage"]["completion_tokens"].get<int>(), 4);
  EXPECT_GE(body["usage"]["completion_tokens"].get<int>(), 1);
}

TEST_F(ServerTest, MalformedJsonIs400) {
  const auto [status, body] = complete("{\"prompt\": ");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
}

TEST_F(ServerTest, BodyNotObjectIs400) { expect_rejected(json::array({1, 2}), ""); }
TEST_F(ServerTest, MissingPromptIs400) { expect_rejected({{"max_tokens", 4}}, "prompt"); }
TEST_F(ServerTest, EmptyPromptIs400) { expect_rejected({{"prompt", ""}}, "prompt"); }
TEST_F(ServerTest, PromptArrayIs400) { expect_rejected({{"prompt", {"a", "b"}}}, "prompt"); }
TEST_F(ServerTest, PromptTooLongIs400) { expect_rejected({{"prompt", std::string(kMaxContext, 'a')}}, "prompt"); }
TEST_F(ServerTest, MaxTokensZeroIs400) { expect_rejected({{"prompt", "a"}, {"max_tokens", 0}}, "max_tokens"); }
TEST_F(ServerTest, MaxTokensStringIs400) { expect_rejected({{"prompt", "a"}, {"max_tokens", "4"}}, "max_tokens"); }
TEST_F(ServerTest, MaxTokensFractionIs400) { expect_rejected({{"prompt", "a"}, {"max_tokens", 2.5}}, "max_tokens"); }
TEST_F(ServerTest, MaxTokensBeyondContextIs400) {
  expect_rejected({{"prompt", "abc"}, {"max_tokens", kMaxContext - 2}}, "max_tokens");
}
TEST_F(ServerTest, NegativeTemperatureIs400) {
  expect_rejected({{"prompt", "a"}, {"temperature", -0.1}}, "temperature");
}
TEST_F(ServerTest, TopPZeroIs400) { expect_rejected({{"prompt", "a"}, {"top_p", 0}}, "top_p"); }
TEST_F(ServerTest, TopPAboveOneIs400) { expect_rejected({{"prompt", "a"}, {"top_p", 1.5}}, "top_p"); }
TEST_F(ServerTest, NegativeTopKIs400) { expect_rejected({{"prompt", "a"}, {"top_k", -1}}, "top_k"); }
TEST_F(ServerTest, NegativeSeedIs400) { expect_rejected({{"prompt", "a"}, {"seed", -3}}, "seed"); }
TEST_F(ServerTest, StopNumberIs400) { expect_rejected({{"prompt", "a"}, {"stop", 3}}, "stop"); }
TEST_F(ServerTest, EmptyStopIs400) { expect_rejected({{"prompt", "a"}, {"stop", {""}}}, "stop"); }
TEST_F(ServerTest, FiveStopsIs400) {
  expect_rejected({{"prompt", "a"}, {"stop", {"a", "b", "c", "d", "e"}}}, "stop");
}
TEST_F(ServerTest, StreamStringIs400) { expect_rejected({{"prompt", "a"}, {"stream", "yes"}}, "stream"); }
TEST_F(ServerTest, SeveralChoicesIs400) { expect_rejected({{"prompt", "a"}, {"n", 2}}, "n"); }
TEST_F(ServerTest, ModelNumberIs400) { expect_rejected({{"prompt", "a"}, {"model", 1}}, "model"); }

TEST_F(ServerTest, UnknownModelIs404) {
  const auto [status, body] = complete(R"({"model": "other", "prompt": "a"})");
  EXPECT_EQ(status, 404);
  EXPECT_EQ(body["error"]["param"], "model");
}

TEST_F(ServerTest, ConcurrentRequestsBothComplete) {
  const std::string request = R"({"prompt": "Hello", "max_tokens": 10, "temperature": 0})";
  const std::string streamed = R"({"prompt": "Hello", "max_tokens": 10, "temperature": 0, "stream": true})";
  auto plain = std::async(std::launch::async, [&] { return complete(request); });
  auto stream = std::async(std::launch::async, [&] {
    httplib::Client http = client();
    const httplib::Result result = http.Post("/v1/completions", streamed, "application/json");
    return result ? std::make_pair(result->status, result->body) : std::make_pair(-1, std::string());
  });
  auto second = std::async(std::launch::async, [&] { return complete(request); });
  ASSERT_EQ(plain.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  ASSERT_EQ(stream.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  ASSERT_EQ(second.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  const auto [status_a, body_a] = plain.get();
  const auto [status_b, body_b] = second.get();
  const auto [status_s, events] = stream.get();
  EXPECT_EQ(status_a, 200);
  EXPECT_EQ(status_b, 200);
  EXPECT_EQ(status_s, 200);
  EXPECT_EQ(body_a["choices"][0]["text"], body_b["choices"][0]["text"]);
  EXPECT_NE(events.find("data: [DONE]\n\n"), std::string::npos);
}

// The byte tokenizer has no Llama-3 header tokens, so chat uses the plain
// "role: content" template and stops at "\nuser:" or "\nsystem:".
TEST_F(ServerTest, ChatMatchesPlainTemplate) {
  const json request = {{"model", "tiny"},
                        {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
                        {"max_tokens", 10},
                        {"temperature", 0}};
  const auto [status, body] = complete_at("/v1/chat/completions", request.dump());
  ASSERT_EQ(status, 200);
  const std::string templated = "system: Be brief.\nuser: Hi\nassistant:";
  const test::ReferenceGeneration reference = test::greedy_reference(*model_, *tokenizer_, templated, 10);
  std::string expected = reference.text;
  expected = expected.substr(0, std::min(expected.find("\nuser:"), expected.find("\nsystem:")));
  EXPECT_EQ(body["object"], "chat.completion");
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], replace_invalid_utf8(expected));
  EXPECT_EQ(body["usage"]["prompt_tokens"], templated.size());  // one byte token per character
}

TEST_F(ServerTest, ChatStreamConcatenatesToMessage) {
  json request = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 10}, {"temperature", 0}};
  const auto [status, body] = complete_at("/v1/chat/completions", request.dump());
  ASSERT_EQ(status, 200);
  request["stream"] = true;
  httplib::Client http = client();
  const httplib::Result result = http.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200);
  const std::string& events = result->body;
  ASSERT_GE(events.size(), 14u);
  EXPECT_EQ(events.substr(events.size() - 14), "data: [DONE]\n\n");

  std::string content;
  std::string role;
  size_t begin = 0;
  while (true) {
    const size_t end = events.find("\n\n", begin);
    ASSERT_NE(end, std::string::npos);
    const std::string payload = events.substr(begin + 6, end - begin - 6);
    begin = end + 2;
    if (payload == "[DONE]") break;
    const json chunk = json::parse(payload);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("role")) role = delta["role"];
    if (delta.contains("content")) content += delta["content"].get<std::string>();
  }
  EXPECT_EQ(role, "assistant");
  EXPECT_EQ(content, body["choices"][0]["message"]["content"]);
}

TEST_F(ServerTest, ChatWithoutMessagesIs400) {
  const auto [status, body] = complete_at("/v1/chat/completions", R"({"prompt": "Hi"})");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(body["error"]["param"], "messages");
}

TEST_F(ServerTest, ChatEmptyMessagesIs400) {
  const auto [status, body] = complete_at("/v1/chat/completions", R"({"messages": []})");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(body["error"]["param"], "messages");
}

TEST_F(ServerTest, ChatUnknownRoleIs400) {
  const auto [status, body] =
      complete_at("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "Hi"}]})");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(body["error"]["param"], "messages");
}

TEST_F(ServerTest, ChatContentNumberIs400) {
  const auto [status, body] =
      complete_at("/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(body["error"]["param"], "messages");
}

TEST(ServerOptionsTest, BosCountsAsPromptToken) {
  Model model = test::tiny_serving_model();
  const auto tokenizer = load_tokenizer("byte");
  ServerOptions options;
  options.port = 0;
  options.bos = true;
  CompletionServer server(model, *tokenizer, options);
  server.start();
  httplib::Client http("127.0.0.1", server.port());
  http.set_read_timeout(std::chrono::seconds(30));
  const httplib::Result result =
      http.Post("/v1/completions", R"({"prompt": "Hello", "max_tokens": 1})", "application/json");
  server.stop();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(json::parse(result->body)["usage"]["prompt_tokens"], 6);
}

TEST_F(ServerTest, StopIsIdempotent) {
  server_->stop();
  server_->stop();
  httplib::Client http = client();
  http.set_connection_timeout(std::chrono::seconds(2));
  EXPECT_FALSE(http.Get("/health"));
}

}  // namespace
}  // namespace ropepp
