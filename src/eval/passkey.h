// Passkey retrieval: a random number hidden at a chosen depth inside a real
// text of a chosen length, then a question asking the model to repeat it.
//
//   [BOS] intro | haystack before | needle | haystack after | question
//
// The needle states the number twice; the question ends with "The pass key is"
// so that a greedy continuation should start with the number. Lengths count
// tokens of the whole prompt, BOS included.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace ropepp::eval {

struct PasskeyPrompt {
  std::vector<int32_t> tokens;
  std::string passkey;           // decimal digits
  int64_t needle_begin = 0;      // index of the needle's first token in `tokens`
  int64_t needle_end = 0;
};

// Returns a random passkey of `digits` decimal digits without a leading zero,
// a pure function of (seed, trial). Throws ropepp::Error unless 1 <= digits <= 18.
std::string random_passkey(int digits, uint64_t seed, uint64_t trial);

// Builds a prompt of exactly `length` tokens with the needle after
// round(depth * haystack tokens) haystack tokens. The haystack is
// haystack_tokens[offset ..]. Throws ropepp::Error when depth is outside
// [0, 1], the fixed parts leave no room for haystack, or the haystack is too
// short from `offset`.
PasskeyPrompt build_passkey_prompt(const Tokenizer& tokenizer, std::span<const int32_t> haystack_tokens,
                                   int64_t offset, int64_t length, double depth, const std::string& passkey,
                                   std::optional<int32_t> bos);

// Tokens of a prompt that are not haystack (BOS, instructions, needle with a
// key of `digits` digits, question): the shortest useful length is a little more.
int64_t passkey_fixed_tokens(const Tokenizer& tokenizer, int digits, bool bos);

// Scores a generated answer: true only when the first run of decimal digits in
// `answer` is exactly `passkey` (so "12345." passes, "123456" and "1234" fail,
// and an answer with no digits fails).
bool passkey_answer_correct(const std::string& answer, const std::string& passkey);

struct PasskeyOptions {
  std::vector<int64_t> lengths;  // prompt lengths in tokens
  std::vector<double> depths;    // needle depths in [0, 1]
  int trials = 5;                // prompts per (length, depth) cell
  int digits = 5;
  uint64_t seed = 0;
  ForwardOptions forward;  // rope override and query noise for every call
  bool progress = true;
};

// Accuracy per (length, depth) cell: correct / trials.
struct PasskeyGrid {
  std::vector<int64_t> lengths;
  std::vector<double> depths;
  std::vector<double> accuracy;  // [lengths][depths]
  int trials = 0;

  double mean_accuracy() const;
  double accuracy_at(size_t length_index, size_t depth_index) const {
    return accuracy[length_index * depths.size() + depth_index];
  }
};

// Greedily generates max_new_tokens after `prompt` and returns the ids
// (stopping early at eos when given).
std::vector<int32_t> greedy_generate(Model& model, std::span<const int32_t> prompt, int max_new_tokens,
                                     std::optional<int32_t> eos, const ForwardOptions& options = {});

// Runs the whole grid. Haystack text for trial i of a cell starts at a
// seeded random offset, so each trial reads a different part of the corpus.
PasskeyGrid evaluate_passkey(Model& model, const Tokenizer& tokenizer, std::span<const int32_t> haystack_tokens,
                             const PasskeyOptions& options);

// CSV: length,depth,accuracy,trials. Heatmap: lengths as rows, depths as columns.
void write_passkey_csv(const std::filesystem::path& path, const std::vector<std::string>& model_names,
                       const std::vector<PasskeyGrid>& grids);
void write_passkey_heatmaps(const std::filesystem::path& path, const std::vector<std::string>& model_names,
                            const std::vector<PasskeyGrid>& grids);

}  // namespace ropepp::eval
