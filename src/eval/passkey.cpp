#include "eval/passkey.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/plot.h"
#include "eval/table.h"

namespace ropepp::eval {
namespace {

constexpr const char* kIntro =
    "There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about it afterwards.\n";
constexpr const char* kQuestion = "\nWhat is the pass key? The pass key is";

std::string needle_text(const std::string& passkey) {
  return "\nThe pass key is " + passkey + ". Remember it. " + passkey + " is the pass key.\n";
}

// Index of the largest logit; ties go to the lowest id.
int32_t argmax(const float* logits, int64_t vocab) {
  return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
}

// Decodes a generated answer, stopping at the first id the tokenizer does not
// know (a model may round its vocabulary up past the tokenizer's), so that no
// unknown token is silently dropped between two digit runs.
std::string decode_answer(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) break;
    text += tokenizer.token_bytes(id);
  }
  return text;
}

}  // namespace

std::string random_passkey(int digits, uint64_t seed, uint64_t trial) {
  ROPEPP_CHECK(digits >= 1 && digits <= 18, "invalid passkey length {}: expected 1 to 18 digits", digits);
  Rng rng(mix64(seed) ^ trial);
  std::string passkey(1, static_cast<char>('1' + rng.below(9)));
  for (int i = 1; i < digits; ++i) passkey += static_cast<char>('0' + rng.below(10));
  return passkey;
}

PasskeyPrompt build_passkey_prompt(const Tokenizer& tokenizer, std::span<const int32_t> haystack_tokens,
                                   int64_t offset, int64_t length, double depth, const std::string& passkey,
                                   std::optional<int32_t> bos) {
  ROPEPP_CHECK(depth >= 0.0 && depth <= 1.0, "invalid passkey depth {}: expected a fraction in [0, 1]", depth);
  const std::vector<int32_t> intro = tokenizer.encode(kIntro);
  const std::vector<int32_t> needle = tokenizer.encode(needle_text(passkey));
  const std::vector<int32_t> question = tokenizer.encode(kQuestion);
  const int64_t fixed = (bos ? 1 : 0) + static_cast<int64_t>(intro.size() + needle.size() + question.size());
  const int64_t filler = length - fixed;
  ROPEPP_CHECK(filler >= 1, "passkey prompt length {} is too short: the instructions alone take {} tokens; use a "
               "length of at least {}", length, fixed, fixed + 1);
  ROPEPP_CHECK(offset >= 0 && offset + filler <= static_cast<int64_t>(haystack_tokens.size()),
               "the haystack corpus has {} tokens, too few for {} filler tokens from offset {}; use a larger corpus "
               "or shorter lengths", haystack_tokens.size(), filler, offset);

  const auto before = static_cast<int64_t>(std::llround(depth * static_cast<double>(filler)));
  PasskeyPrompt prompt;
  prompt.passkey = passkey;
  prompt.tokens.reserve(length);
  if (bos) prompt.tokens.push_back(*bos);
  prompt.tokens.insert(prompt.tokens.end(), intro.begin(), intro.end());
  prompt.tokens.insert(prompt.tokens.end(), haystack_tokens.begin() + offset,
                       haystack_tokens.begin() + offset + before);
  prompt.needle_begin = static_cast<int64_t>(prompt.tokens.size());
  prompt.tokens.insert(prompt.tokens.end(), needle.begin(), needle.end());
  prompt.needle_end = static_cast<int64_t>(prompt.tokens.size());
  prompt.tokens.insert(prompt.tokens.end(), haystack_tokens.begin() + offset + before,
                       haystack_tokens.begin() + offset + filler);
  prompt.tokens.insert(prompt.tokens.end(), question.begin(), question.end());
  return prompt;
}

int64_t passkey_fixed_tokens(const Tokenizer& tokenizer, int digits, bool bos) {
  const std::string passkey = random_passkey(digits, 0, 0);
  return (bos ? 1 : 0) + static_cast<int64_t>(tokenizer.encode(kIntro).size() +
                                              tokenizer.encode(needle_text(passkey)).size() +
                                              tokenizer.encode(kQuestion).size());
}

bool passkey_answer_correct(const std::string& answer, const std::string& passkey) {
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto first = std::find_if(answer.begin(), answer.end(), is_digit);
  if (first == answer.end()) return false;
  const auto last = std::find_if_not(first, answer.end(), is_digit);
  return std::string(first, last) == passkey;
}

double PasskeyGrid::mean_accuracy() const {
  if (accuracy.empty()) return std::nan("");
  double sum = 0.0;
  for (double a : accuracy) sum += a;
  return sum / static_cast<double>(accuracy.size());
}

std::vector<int32_t> greedy_generate(Model& model, std::span<const int32_t> prompt, int max_new_tokens,
                                     std::optional<int32_t> eos, const ForwardOptions& options) {
  ROPEPP_CHECK(!prompt.empty(), "greedy generation needs a prompt of at least one token");
  const int64_t vocab = model.config().vocab_size;
  KVCache cache = model.make_cache(static_cast<int64_t>(prompt.size()) + max_new_tokens);
  std::vector<float> logits(vocab);
  ForwardOptions prefill = options;
  prefill.logits_start = static_cast<int64_t>(prompt.size()) - 1;
  model.forward({prompt, {}, {}}, logits.data(), prefill, &cache);

  std::vector<int32_t> generated;
  for (int i = 0; i < max_new_tokens; ++i) {
    const int32_t next = argmax(logits.data(), vocab);
    if (eos && next == *eos) break;
    generated.push_back(next);
    if (i + 1 < max_new_tokens) model.decode(next, cache, logits.data(), options);
  }
  return generated;
}

PasskeyGrid evaluate_passkey(Model& model, const Tokenizer& tokenizer, std::span<const int32_t> haystack_tokens,
                             const PasskeyOptions& options) {
  ROPEPP_CHECK(!options.lengths.empty() && !options.depths.empty(), "passkey evaluation needs lengths and depths");
  ROPEPP_CHECK(options.trials >= 1, "invalid passkey trial count {}: expected >= 1", options.trials);
  const std::optional<int32_t> bos = tokenizer.bos_id();
  const std::optional<int32_t> eos = tokenizer.eos_id();
  // Enough tokens for the digits even with one digit per token, plus a margin
  // for a leading space.
  const int max_new_tokens = options.digits + 3;

  PasskeyGrid grid;
  grid.lengths = options.lengths;
  grid.depths = options.depths;
  grid.trials = options.trials;
  grid.accuracy.assign(options.lengths.size() * options.depths.size(), 0.0);

  const int64_t total = static_cast<int64_t>(grid.accuracy.size()) * options.trials;
  std::optional<ProgressBar> progress;
  if (options.progress) progress.emplace(total, "passkey");
  int64_t done = 0;
  for (size_t li = 0; li < options.lengths.size(); ++li) {
    for (size_t di = 0; di < options.depths.size(); ++di) {
      int correct = 0;
      for (int trial = 0; trial < options.trials; ++trial) {
        // The same (length, trial) reads the same haystack and key at every depth,
        // so depths differ only by where the needle sits.
        const uint64_t trial_id = li * 1000003ull + static_cast<uint64_t>(trial);
        const std::string passkey = random_passkey(options.digits, options.seed, trial_id);
        const int64_t span = static_cast<int64_t>(haystack_tokens.size()) - options.lengths[li];
        const int64_t offset =
            span > 0 ? static_cast<int64_t>(hash_counter(options.seed, 7, trial_id) % static_cast<uint64_t>(span)) : 0;
        const PasskeyPrompt prompt = build_passkey_prompt(tokenizer, haystack_tokens, offset, options.lengths[li],
                                                          options.depths[di], passkey, bos);
        const std::vector<int32_t> answer_ids =
            greedy_generate(model, prompt.tokens, max_new_tokens, eos, options.forward);
        if (passkey_answer_correct(decode_answer(tokenizer, answer_ids), passkey)) ++correct;
        if (progress) progress->update(++done, fmt::format("length {}", options.lengths[li]));
      }
      grid.accuracy[li * options.depths.size() + di] = static_cast<double>(correct) / options.trials;
    }
  }
  if (progress) progress->finish(fmt::format("mean accuracy {:.3f}", grid.mean_accuracy()));
  return grid;
}

void write_passkey_csv(const std::filesystem::path& path, const std::vector<std::string>& model_names,
                       const std::vector<PasskeyGrid>& grids) {
  Table table({"model", "length", "depth", "accuracy", "trials"});
  for (size_t m = 0; m < grids.size(); ++m) {
    const PasskeyGrid& grid = grids[m];
    for (size_t li = 0; li < grid.lengths.size(); ++li) {
      for (size_t di = 0; di < grid.depths.size(); ++di) {
        table.add_row({model_names[m], std::to_string(grid.lengths[li]), fmt::format("{:g}", grid.depths[di]),
                       fmt::format("{:.4g}", grid.accuracy_at(li, di)), std::to_string(grid.trials)});
      }
    }
  }
  table.write_csv(path);
}

void write_passkey_heatmaps(const std::filesystem::path& path, const std::vector<std::string>& model_names,
                            const std::vector<PasskeyGrid>& grids) {
  std::vector<Heatmap> panels;
  for (size_t m = 0; m < grids.size(); ++m) {
    const PasskeyGrid& grid = grids[m];
    Heatmap map;
    map.title = fmt::format("{} (mean {:.2f})", model_names[m], grid.mean_accuracy());
    map.x_label = "needle depth (fraction of the haystack)";
    map.y_label = "prompt length (tokens)";
    map.rows = static_cast<int>(grid.lengths.size());
    map.columns = static_cast<int>(grid.depths.size());
    map.values = grid.accuracy;
    for (int64_t length : grid.lengths) map.row_labels.push_back(std::to_string(length));
    for (double depth : grid.depths) map.column_labels.push_back(fmt::format("{:g}", depth));
    map.value_min = 0.0;
    map.value_max = 1.0;
    map.annotate = map.rows * map.columns <= 100;
    panels.push_back(std::move(map));
  }
  write_heatmaps(path, "Passkey retrieval accuracy (greedy decoding, exact number)", panels);
}

}  // namespace ropepp::eval
