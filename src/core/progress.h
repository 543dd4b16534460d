// A progress bar on stderr when it is a terminal, periodic log lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ropepp {

class ProgressBar {
 public:
  // total: number of units of work; label: shown before the bar.
  ProgressBar(int64_t total, std::string label);
  ~ProgressBar();

  // Sets the completed count and an optional status text (loss, speed, ...).
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  void draw(bool final_line);

  int64_t total_;
  int64_t done_ = 0;
  int64_t drawn_done_ = -1;  // done_ at the last draw
  std::string label_;
  std::string status_;
  bool terminal_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace ropepp
