// Next-token negative log-likelihoods from a Model, the quantity behind every
// perplexity of the evaluation layer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace ropepp::eval {

// Largest logits buffer one forward call may fill, in bytes. Longer requests
// run as a chunked prefill through a KV cache (same result up to summation
// order) so that a 4096-token window with a 128k vocabulary does not need 2 GiB.
inline constexpr int64_t kDefaultLogitsBudgetBytes = int64_t{256} << 20;

// Natural-log NLL of tokens[j] given tokens[0 .. j-1], for every target j in
// [score_begin, tokens.size()), at positions 0 .. T-1. options.logits_start is
// ignored; options.capture must be empty. Throws ropepp::Error when
// score_begin < 1 or > T.
std::vector<double> target_nll(Model& model, std::span<const int32_t> tokens, int64_t score_begin,
                               const ForwardOptions& options = {},
                               int64_t logits_budget_bytes = kDefaultLogitsBudgetBytes);

// Sum of NLLs and the number of targets behind it.
struct NllSum {
  double nll = 0.0;     // nats
  int64_t targets = 0;
  int64_t bytes = 0;    // UTF-8 bytes of the text these targets encode, when known

  void add(const NllSum& other) {
    nll += other.nll;
    targets += other.targets;
    bytes += other.bytes;
  }
  double perplexity() const;     // exp(nll / targets); NaN without targets
  double bits_per_byte() const;  // nll / ln 2 / bytes; NaN without bytes
};

}  // namespace ropepp::eval
