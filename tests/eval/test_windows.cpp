#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "eval/windows.h"

namespace ropepp::eval {
namespace {

// Counts how often each target index 1 .. n-1 is scored.
std::vector<int> score_counts(int64_t n_tokens, const std::vector<Window>& windows) {
  std::vector<int> counts(n_tokens, 0);
  for (const Window& window : windows) {
    for (int64_t j = window.score_begin; j < window.end; ++j) counts[j] += 1;
  }
  return counts;
}

TEST(SlidingWindows, EveryTargetScoredOnce) {
  const int64_t cases[][3] = {{2, 2, 1},    {10, 4, 2},    {11, 4, 3},     {100, 16, 15}, {101, 16, 5},
                              {7, 100, 10}, {4097, 4096, 512}, {9000, 4096, 512}, {37, 5, 1}, {50, 8, 7}};
  for (const auto& c : cases) {
    const int64_t n = c[0], window = c[1], stride = c[2];
    SCOPED_TRACE(testing::Message() << "n=" << n << " window=" << window << " stride=" << stride);
    const std::vector<Window> windows = plan_sliding_windows(n, window, stride);
    const std::vector<int> counts = score_counts(n, windows);
    EXPECT_EQ(counts[0], 0) << "token 0 has no context and must not be scored";
    for (int64_t j = 1; j < n; ++j) EXPECT_EQ(counts[j], 1) << "target " << j;
    for (const Window& w : windows) {
      EXPECT_LE(w.end - w.begin, window);
      EXPECT_GT(w.score_begin, w.begin) << "a window's first token has no context inside the window";
      EXPECT_LT(w.score_begin, w.end);
    }
    EXPECT_EQ(windows.back().end, n);
  }
}

TEST(SlidingWindows, PaperProtocolScoresLastStride) {
  const std::vector<Window> windows = plan_sliding_windows(4096 + 3 * 512, 4096, 512);
  ASSERT_EQ(windows.size(), 4u);
  EXPECT_EQ(windows[0].begin, 0);
  EXPECT_EQ(windows[0].end, 4096);
  EXPECT_EQ(windows[0].score_begin, 1) << "the first window scores all its tokens";
  for (size_t w = 1; w < windows.size(); ++w) {
    EXPECT_EQ(windows[w].begin, static_cast<int64_t>(512 * w));
    EXPECT_EQ(windows[w].end - windows[w].begin, 4096);
    EXPECT_EQ(windows[w].end - windows[w].score_begin, 512) << "later windows score only the new stride";
  }
}

TEST(SlidingWindows, ShortSequences) {
  EXPECT_TRUE(plan_sliding_windows(0, 8, 4).empty());
  EXPECT_TRUE(plan_sliding_windows(1, 8, 4).empty());
  const std::vector<Window> one = plan_sliding_windows(5, 8, 4);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].end, 5);
}

TEST(SlidingWindows, InvalidSettingsRejected) {
  EXPECT_THROW(plan_sliding_windows(10, 4, 5), Error);
  EXPECT_THROW(plan_sliding_windows(10, 4, 4), Error) << "stride == window leaves a window's first target without context";
  EXPECT_THROW(plan_sliding_windows(10, 4, 0), Error);
  EXPECT_THROW(plan_sliding_windows(10, 1, 1), Error);
}

TEST(Chunks, ExactLengthsAndLimit) {
  const std::vector<Window> chunks = plan_chunks(100, 30, 0);
  ASSERT_EQ(chunks.size(), 3u);
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].begin, static_cast<int64_t>(30 * i));
    EXPECT_EQ(chunks[i].end - chunks[i].begin, 30);
  }
  EXPECT_EQ(plan_chunks(100, 30, 2).size(), 2u);
  EXPECT_TRUE(plan_chunks(29, 30, 0).empty());
}

}  // namespace
}  // namespace ropepp::eval
