// Sliding-window bookkeeping for perplexity over sequences longer than the
// model's context.
//
// Token i (i >= 1) is predicted from tokens < i; token 0 has no context and is
// never scored (callers prepend BOS so that every text token is scored).
// Window k ends at min(window + k * stride, n) and spans the `window` tokens
// before its end (fewer at the start of the text). Each window scores only the
// targets that no earlier window scored: the first window scores targets
// 1 .. window-1, every later one its last `stride` (or fewer, at the end)
// tokens with at least window - stride tokens of context. stride < window
// guarantees that context, so every target is scored exactly once.
#pragma once

#include <cstdint>
#include <vector>

namespace ropepp::eval {

struct Window {
  int64_t begin = 0;        // first token fed to the model
  int64_t end = 0;          // one past the last token fed
  int64_t score_begin = 0;  // first target scored; targets score_begin .. end-1
};

// Plans the windows over n_tokens tokens. Throws ropepp::Error unless
// 1 <= stride < window. Returns no window when n_tokens < 2.
std::vector<Window> plan_sliding_windows(int64_t n_tokens, int64_t window, int64_t stride);

// Splits n_tokens into consecutive, non-overlapping chunks of exactly `length`
// tokens (the remainder is dropped), at most max_chunks of them (0: all).
std::vector<Window> plan_chunks(int64_t n_tokens, int64_t length, int64_t max_chunks);

}  // namespace ropepp::eval
