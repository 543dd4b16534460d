#include "eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace ropepp::eval {
namespace {

// NLL of `target` under one row of logits, in double precision.
double row_nll(const float* row, int64_t vocab, int32_t target) {
  return logsumexp(row, vocab) - static_cast<double>(row[target]);
}

}  // namespace

std::vector<double> target_nll(Model& model, std::span<const int32_t> tokens, int64_t score_begin,
                               const ForwardOptions& options, int64_t logits_budget_bytes) {
  const auto n_tokens = static_cast<int64_t>(tokens.size());
  const int64_t vocab = model.config().vocab_size;
  ROPEPP_CHECK(score_begin >= 1 && score_begin <= n_tokens,
               "invalid first scored token {} for a sequence of {} tokens: expected 1 <= index <= length", score_begin,
               n_tokens);
  ROPEPP_CHECK(options.capture.empty(), "target_nll does not capture attention; run Model::forward for that");
  for (int64_t j = score_begin; j < n_tokens; ++j) {
    ROPEPP_CHECK(tokens[j] >= 0 && tokens[j] < vocab, "token {} at index {} is outside the model's vocabulary [0, {})",
                 tokens[j], j, vocab);
  }

  std::vector<double> nll;
  nll.reserve(n_tokens - score_begin);
  // Logit rows score_begin-1 .. T-2 predict the targets; row T-1 is not needed
  // but forward() writes every row from logits_start to the end of a call.
  const int64_t first_row = score_begin - 1;
  const int64_t rows_per_call = std::max<int64_t>(1, logits_budget_bytes / (vocab * int64_t{sizeof(float)}));
  ForwardOptions call_options = options;

  if (n_tokens - first_row <= rows_per_call) {
    std::vector<float> logits((n_tokens - first_row) * vocab);
    call_options.logits_start = first_row;
    model.forward({tokens, {}, {}}, logits.data(), call_options);
    for (int64_t j = score_begin; j < n_tokens; ++j) {
      nll.push_back(row_nll(logits.data() + (j - 1 - first_row) * vocab, vocab, tokens[j]));
    }
    return nll;
  }

  // Chunked prefill: the context before first_row in one call without logits,
  // then rows_per_call tokens per call, each continuing the KV cache.
  KVCache cache = model.make_cache(n_tokens);
  std::vector<float> logits(rows_per_call * vocab);
  if (first_row > 0) {
    call_options.logits_start = first_row;
    model.forward({tokens.subspan(0, first_row), {}, {}}, nullptr, call_options, &cache);
  }
  for (int64_t begin = first_row; begin < n_tokens; begin += rows_per_call) {
    const int64_t count = std::min(rows_per_call, n_tokens - begin);
    call_options.logits_start = 0;
    model.forward({tokens.subspan(begin, count), {}, {}}, logits.data(), call_options, &cache);
    for (int64_t row = 0; row < count; ++row) {
      const int64_t j = begin + row + 1;
      if (j < n_tokens) nll.push_back(row_nll(logits.data() + row * vocab, vocab, tokens[j]));
    }
  }
  return nll;
}

double NllSum::perplexity() const {
  if (targets == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::exp(nll / static_cast<double>(targets));
}

double NllSum::bits_per_byte() const {
  if (bytes == 0) return std::numeric_limits<double>::quiet_NaN();
  return nll / std::log(2.0) / static_cast<double>(bytes);
}

}  // namespace ropepp::eval
