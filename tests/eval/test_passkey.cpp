#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "eval/passkey.h"
#include "tokenizer/byte_tokenizer.h"
#include "tiny_model.h"

namespace ropepp::eval {
namespace {

TEST(PasskeyScoring, AcceptsOnlyExactNumber) {
  EXPECT_TRUE(passkey_answer_correct("12345", "12345"));
  EXPECT_TRUE(passkey_answer_correct(" 12345.", "12345"));
  EXPECT_TRUE(passkey_answer_correct(" 12345 is the pass key", "12345"));
  EXPECT_TRUE(passkey_answer_correct("\n12345\n67890", "12345")) << "only the first number counts";

  EXPECT_FALSE(passkey_answer_correct("123456", "12345")) << "extra digit";
  EXPECT_FALSE(passkey_answer_correct("1234", "12345")) << "missing digit";
  EXPECT_FALSE(passkey_answer_correct("012345", "12345")) << "leading zero";
  EXPECT_FALSE(passkey_answer_correct("12 345", "12345")) << "split number";
  EXPECT_FALSE(passkey_answer_correct("1,2345", "12345"));
  EXPECT_FALSE(passkey_answer_correct("54321", "12345"));
  EXPECT_FALSE(passkey_answer_correct("", "12345"));
  EXPECT_FALSE(passkey_answer_correct(" the pass key", "12345"));
  EXPECT_FALSE(passkey_answer_correct("99 then 12345", "12345")) << "a wrong first number fails";
}

TEST(PasskeyPrompt, RandomKeysHaveExactDigits) {
  for (int digits : {1, 5, 9, 18}) {
    for (uint64_t trial = 0; trial < 50; ++trial) {
      const std::string key = random_passkey(digits, 7, trial);
      ASSERT_EQ(key.size(), static_cast<size_t>(digits));
      EXPECT_NE(key[0], '0');
      for (char c : key) EXPECT_TRUE(c >= '0' && c <= '9');
    }
  }
  EXPECT_EQ(random_passkey(5, 7, 3), random_passkey(5, 7, 3)) << "deterministic in (seed, trial)";
  EXPECT_NE(random_passkey(9, 7, 3), random_passkey(9, 7, 4));
  EXPECT_THROW(random_passkey(0, 1, 1), Error);
  EXPECT_THROW(random_passkey(19, 1, 1), Error);
}

TEST(PasskeyPrompt, ExactLengthAndDepth) {
  const ByteTokenizer tokenizer;
  const std::vector<int32_t> haystack = testing_support::pseudo_text(5000);
  for (int64_t length : {400, 1000, 2500}) {
    for (double depth : {0.0, 0.25, 0.5, 1.0}) {
      SCOPED_TRACE(testing::Message() << "length=" << length << " depth=" << depth);
      const PasskeyPrompt prompt =
          build_passkey_prompt(tokenizer, haystack, 100, length, depth, "80412", tokenizer.bos_id());
      ASSERT_EQ(static_cast<int64_t>(prompt.tokens.size()), length);
      EXPECT_EQ(prompt.tokens.front(), ByteTokenizer::kBeginOfText);

      const std::string text = tokenizer.decode(std::span(prompt.tokens).subspan(1));
      const std::string needle = tokenizer.decode(
          std::span(prompt.tokens).subspan(prompt.needle_begin, prompt.needle_end - prompt.needle_begin));
      EXPECT_NE(needle.find("The pass key is 80412."), std::string::npos) << needle;
      EXPECT_EQ(text.substr(text.size() - 15), "The pass key is") << "the prompt ends with the question";

      // The needle sits after round(depth * filler) haystack tokens.
      const int64_t intro_end = static_cast<int64_t>(tokenizer.encode(text.substr(0, text.find('\n') + 1)).size()) + 1;
      const int64_t haystack_before = prompt.needle_begin - intro_end;
      const int64_t question = static_cast<int64_t>(tokenizer.encode("\nWhat is the pass key? The pass key is").size());
      const int64_t haystack_after = static_cast<int64_t>(prompt.tokens.size()) - prompt.needle_end - question;
      const int64_t filler = haystack_before + haystack_after;
      EXPECT_EQ(haystack_before, static_cast<int64_t>(std::llround(depth * filler)));
      const int64_t first_haystack = haystack_before > 0 ? intro_end : prompt.needle_end;
      EXPECT_EQ(prompt.tokens[first_haystack], haystack[100]) << "the haystack starts at the offset";
    }
  }
}

TEST(PasskeyPrompt, InvalidRequestsRejected) {
  const ByteTokenizer tokenizer;
  const std::vector<int32_t> haystack = testing_support::pseudo_text(300);
  EXPECT_THROW(build_passkey_prompt(tokenizer, haystack, 0, 50, 0.5, "1", tokenizer.bos_id()), Error)
      << "too short for the instructions";
  EXPECT_THROW(build_passkey_prompt(tokenizer, haystack, 0, 1000, 0.5, "1", tokenizer.bos_id()), Error)
      << "haystack too short";
  EXPECT_THROW(build_passkey_prompt(tokenizer, haystack, 0, 250, 1.5, "1", tokenizer.bos_id()), Error);
}

TEST(PasskeyEvaluation, GridShapeAndDeterminism) {
  const ByteTokenizer tokenizer;
  Model model = testing_support::tiny_model(Variant::kEC);
  const std::vector<int32_t> haystack = testing_support::pseudo_text(2000);
  PasskeyOptions options;
  options.lengths = {256, 320};
  options.depths = {0.0, 0.5, 1.0};
  options.trials = 2;
  options.progress = false;
  const PasskeyGrid grid = evaluate_passkey(model, tokenizer, haystack, options);
  ASSERT_EQ(grid.accuracy.size(), 6u);
  for (double accuracy : grid.accuracy) {
    EXPECT_GE(accuracy, 0.0);
    EXPECT_LE(accuracy, 1.0);
  }
  const PasskeyGrid again = evaluate_passkey(model, tokenizer, haystack, options);
  EXPECT_EQ(grid.accuracy, again.accuracy);
}

TEST(PasskeyEvaluation, GreedyGenerationMatchesFullForward) {
  Model model = testing_support::tiny_model(Variant::kEH);
  const std::vector<int32_t> prompt = testing_support::pseudo_text(40);
  const std::vector<int32_t> generated = greedy_generate(model, prompt, 6, std::nullopt);
  ASSERT_EQ(generated.size(), 6u);
  // Each generated token is the argmax of a full forward over prompt + previous tokens.
  std::vector<int32_t> sequence = prompt;
  for (int32_t token : generated) {
    const std::vector<float> logits = model.logits(sequence);
    const int64_t vocab = model.config().vocab_size;
    const float* last = logits.data() + (sequence.size() - 1) * vocab;
    const auto expected = static_cast<int32_t>(std::max_element(last, last + vocab) - last);
    EXPECT_EQ(token, expected);
    sequence.push_back(token);
  }
}

}  // namespace
}  // namespace ropepp::eval
