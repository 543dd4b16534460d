// Stop-string matching over text that arrives in pieces, and generate_text
// against a hand-written decode loop.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/generation.h"
#include "serve_test_util.h"
#include "tokenizer/tokenizer.h"

namespace ropepp {
namespace {

// Feeds the pieces one by one and returns everything output.
std::string filter_all(StopStringFilter& filter, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& piece : pieces) out += filter.push(piece);
  out += filter.finish();
  return out;
}

TEST(StopStringFilter, NoStopPassesEverything) {
  StopStringFilter filter({});
  EXPECT_EQ(filter_all(filter, {"ab", "", "cd"}), "abcd");
  EXPECT_FALSE(filter.stopped());
}

TEST(StopStringFilter, CutsBeforeMatchAcrossPieces) {
  StopStringFilter filter({"END"});
  EXPECT_EQ(filter.push("abcE"), "abc");  // "E" may start "END"
  EXPECT_EQ(filter.push("N"), "");
  EXPECT_EQ(filter.push("Dxyz"), "");
  EXPECT_TRUE(filter.stopped());
  EXPECT_EQ(filter.finish(), "");
}

TEST(StopStringFilter, ReleasesFalseStart) {
  StopStringFilter filter({"END"});
  EXPECT_EQ(filter.push("EN"), "");
  EXPECT_EQ(filter.push("x"), "ENx");
  EXPECT_FALSE(filter.stopped());
}

TEST(StopStringFilter, OverlappingPrefixKeepsEarliestStart) {
  StopStringFilter filter({"aab"});
  EXPECT_EQ(filter.push("aa"), "");
  EXPECT_EQ(filter.push("a"), "a");  // "aa" may still start "aab"
  EXPECT_EQ(filter.push("b"), "");
  EXPECT_TRUE(filter.stopped());
}

TEST(StopStringFilter, EarliestOfSeveralStops) {
  StopStringFilter filter({"yz", "b"});
  EXPECT_EQ(filter_all(filter, {"aby", "z"}), "a");
  EXPECT_TRUE(filter.stopped());
}

TEST(StopStringFilter, HeldTailFlushedAtEnd) {
  StopStringFilter filter({"xyz"});
  EXPECT_EQ(filter_all(filter, {"abxy"}), "abxy");
  EXPECT_FALSE(filter.stopped());
}

TEST(GenerateText, GreedyMatchesDirectDecodeLoop) {
  Model model = test::tiny_serving_model();
  const auto tokenizer = load_tokenizer("byte");
  GenerationRequest request;
  request.prompt = tokenizer->encode("Hello");
  request.max_tokens = 20;
  request.sampler.greedy = true;
  request.stop_token_ids = {257};

  std::string streamed;
  const GenerationResult result = generate_text(model, *tokenizer, request, [&](std::string_view text) {
    EXPECT_FALSE(text.empty());
    streamed += text;
    return true;
  });
  const test::ReferenceGeneration reference = test::greedy_reference(model, *tokenizer, "Hello", 20);
  EXPECT_EQ(result.text, reference.text);
  EXPECT_EQ(streamed, reference.text);
  EXPECT_EQ(result.completion_tokens, reference.tokens);
  EXPECT_EQ(finish_reason_name(result.finish_reason), reference.finish_reason);
}

TEST(GenerateText, CallbackFalseCancels) {
  Model model = test::tiny_serving_model();
  const auto tokenizer = load_tokenizer("byte");
  GenerationRequest request;
  request.prompt = tokenizer->encode("Hello");
  request.max_tokens = 20;
  request.sampler.greedy = true;
  const GenerationResult result = generate_text(model, *tokenizer, request, [](std::string_view) { return false; });
  EXPECT_EQ(result.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(result.completion_tokens, 20);
}

TEST(GenerateText, RejectsEmptyPrompt) {
  Model model = test::tiny_serving_model();
  const auto tokenizer = load_tokenizer("byte");
  GenerationRequest request;
  EXPECT_THROW(generate_text(model, *tokenizer, request), Error);
}

}  // namespace
}  // namespace ropepp
