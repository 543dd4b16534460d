#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "core/log.h"

namespace ropepp {
namespace {

std::string format_seconds(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600) return fmt::format("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60);
  return fmt::format("{:02}:{:02}", total / 60, total % 60);
}

}  // namespace

ProgressBar::ProgressBar(int64_t total, std::string label)
    : total_(total > 0 ? total : 1),
      label_(std::move(label)),
      terminal_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && terminal_) std::fputc('\n', stderr);
}

void ProgressBar::update(int64_t done, const std::string& status) {
  done_ = done;
  status_ = status;
  const auto now = std::chrono::steady_clock::now();
  // Terminals redraw up to 10 times a second; logs get a line every 10 seconds.
  const auto interval = terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10000);
  if (now - last_draw_ >= interval || done_ >= total_) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish(const std::string& status) {
  if (finished_) return;
  const bool already_shown = !terminal_ && drawn_done_ == total_ && (status.empty() || status == status_);
  done_ = total_;
  if (!status.empty()) status_ = status;
  // A log line for the last update was already written; do not repeat it.
  if (!already_shown) draw(true);
  finished_ = true;
}

void ProgressBar::draw(bool final_line) {
  drawn_done_ = done_;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = static_cast<double>(done_) / static_cast<double>(total_);
  const double remaining = done_ > 0 ? elapsed * (1.0 - fraction) / fraction : -1.0;
  const std::string times = fmt::format("{} elapsed, {} left", format_seconds(elapsed), format_seconds(remaining));

  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s %s", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), times.c_str(), status_.c_str());
    if (final_line) std::fputc('\n', stderr);
    std::fflush(stderr);
  } else {
    spdlog::info("{}: {}/{} ({:.0f}%) {} {}", label_, done_, total_, 100.0 * fraction, times, status_);
  }
}

}  // namespace ropepp
