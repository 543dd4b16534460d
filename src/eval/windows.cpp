#include "eval/windows.h"

#include <algorithm>

#include "core/error.h"

namespace ropepp::eval {

std::vector<Window> plan_sliding_windows(int64_t n_tokens, int64_t window, int64_t stride) {
  ROPEPP_CHECK(window >= 2, "invalid window {}: expected at least 2 tokens", window);
  ROPEPP_CHECK(stride >= 1 && stride < window,
               "invalid stride {}: expected 1 <= stride < window ({}) so that every scored token has context", stride,
               window);
  std::vector<Window> windows;
  int64_t scored_end = 1;  // targets below this are already scored
  for (int64_t k = 0; scored_end < n_tokens; ++k) {
    const int64_t end = std::min(window + k * stride, n_tokens);
    windows.push_back({std::max<int64_t>(0, end - window), end, scored_end});
    scored_end = end;
  }
  return windows;
}

std::vector<Window> plan_chunks(int64_t n_tokens, int64_t length, int64_t max_chunks) {
  ROPEPP_CHECK(length >= 2, "invalid chunk length {}: expected at least 2 tokens", length);
  ROPEPP_CHECK(max_chunks >= 0, "invalid chunk count {}: expected >= 0", max_chunks);
  std::vector<Window> chunks;
  for (int64_t begin = 0; begin + length <= n_tokens; begin += length) {
    if (max_chunks > 0 && static_cast<int64_t>(chunks.size()) == max_chunks) break;
    chunks.push_back({begin, begin + length, begin + 1});
  }
  return chunks;
}

}  // namespace ropepp::eval
