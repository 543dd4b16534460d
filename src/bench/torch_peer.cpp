#include "bench/torch_peer.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace ropepp::bench {
namespace {

// Maximum wait for one line from the peer. Loading a 1.5B checkpoint in f32
// and timing its prefills takes minutes in PyTorch; a peer silent for longer
// is taken as hung and killed.
constexpr int kLineTimeoutSeconds = 900;

// Maximum length of a line from the peer, whose replies are a few hundred bytes.
constexpr size_t kMaxLineBytes = size_t{1} << 20;

}  // namespace

TorchPeer::TorchPeer(const std::string& command) : command_(command) {
  // A peer that dies must surface as an error from read_line, not as SIGPIPE
  // killing the benchmark on the next write.
  std::signal(SIGPIPE, SIG_IGN);

  std::array<int, 2> to_child{-1, -1};
  std::array<int, 2> from_child{-1, -1};
  ROPEPP_CHECK(::pipe(to_child.data()) == 0 && ::pipe(from_child.data()) == 0,
               "failed to create pipes for the PyTorch peer: {}", std::strerror(errno));

  pid_ = ::fork();
  ROPEPP_CHECK(pid_ >= 0, "failed to start the PyTorch peer: {}", std::strerror(errno));
  if (pid_ == 0) {
    // Child: stdin and stdout become the pipes; stderr stays the terminal.
    ::dup2(to_child[0], STDIN_FILENO);
    ::dup2(from_child[1], STDOUT_FILENO);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }

  ::close(to_child[0]);
  ::close(from_child[1]);
  to_peer_ = to_child[1];
  from_peer_ = from_child[0];
  try {
    prefill_ = read_line();
  } catch (...) {
    // The destructor does not run for a constructor that throws.
    shutdown();
    throw;
  }
}

TorchPeer::~TorchPeer() { shutdown(); }

void TorchPeer::shutdown() {
  if (to_peer_ >= 0) {
    static constexpr char kQuit[] = "quit\n";
    [[maybe_unused]] const ssize_t written = ::write(to_peer_, kQuit, sizeof(kQuit) - 1);
    ::close(to_peer_);
    to_peer_ = -1;
  }
  if (from_peer_ >= 0) {
    ::close(from_peer_);
    from_peer_ = -1;
  }
  if (pid_ > 0) {
    // Give the peer a few seconds to quit, then kill it.
    int status = 0;
    for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
}

nlohmann::json TorchPeer::read_line() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kLineTimeoutSeconds);
  size_t newline = pending_.find('\n');
  while (newline == std::string::npos) {
    ROPEPP_CHECK(pending_.size() <= kMaxLineBytes,
                 "the PyTorch peer ({}) printed over {} bytes without a line break", command_, kMaxLineBytes);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd descriptor{from_peer_, POLLIN, 0};
    const int ready = ::poll(&descriptor, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      ::kill(pid_, SIGKILL);
      fail("the PyTorch peer ({}) printed nothing for {} s and was killed", command_, kLineTimeoutSeconds);
    }
    char buffer[4096];
    const ssize_t n = ::read(from_peer_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    ROPEPP_CHECK(n > 0, "the PyTorch peer ({}) exited without a result; its messages are above", command_);
    pending_.append(buffer, static_cast<size_t>(n));
    newline = pending_.find('\n');
  }

  const std::string line = pending_.substr(0, newline);
  pending_.erase(0, newline + 1);
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {
    fail("the PyTorch peer printed '{}' where a JSON line was expected: {}", line.substr(0, 200), error.what());
  }
}

double TorchPeer::decode(int tokens) {
  const std::string request = "decode " + std::to_string(tokens) + "\n";
  ROPEPP_CHECK(::write(to_peer_, request.data(), request.size()) == static_cast<ssize_t>(request.size()),
               "failed to send a decode request to the PyTorch peer ({}): {}", command_, std::strerror(errno));
  const nlohmann::json reply = read_line();
  ROPEPP_CHECK(reply.contains("decode_seconds_per_token") && reply["decode_seconds_per_token"].is_number(),
               "the PyTorch peer's reply '{}' has no number decode_seconds_per_token", reply.dump());
  return reply["decode_seconds_per_token"].get<double>();
}

}  // namespace ropepp::bench
