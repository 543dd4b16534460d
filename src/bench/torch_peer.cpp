#include "bench/torch_peer.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"

extern char** environ;

namespace ropepp::bench {
namespace {

// Maximum wait for one line from the peer. Loading a 1.5B checkpoint in f32
// and timing its prefills takes minutes in PyTorch; a peer silent for longer
// is taken as hung and killed.
constexpr int kLineTimeoutSeconds = 900;

// Maximum length of a line from the peer, whose replies are a few dozen bytes.
constexpr size_t kMaxLineBytes = 4096;

// The start of a line for messages.
std::string excerpt(const std::string& line) { return line.size() <= 200 ? line : line.substr(0, 200) + "..."; }

}  // namespace

TorchPeer::TorchPeer(const std::vector<std::string>& argv, const std::vector<std::string>& environment) {
  ROPEPP_CHECK(!argv.empty(), "the PyTorch peer needs a program to run");
  for (const std::string& word : argv) name_ += (name_.empty() ? "" : " ") + word;

  // A peer that dies must surface as an error from read_line, not as SIGPIPE
  // killing the benchmark on the next write.
  std::signal(SIGPIPE, SIG_IGN);

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls are allowed while other threads may hold locks.
  std::vector<char*> child_argv;
  for (const std::string& word : argv) child_argv.push_back(const_cast<char*>(word.c_str()));
  child_argv.push_back(nullptr);
  std::vector<char*> child_environment;
  for (const std::string& entry : environment) child_environment.push_back(const_cast<char*>(entry.c_str()));
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const size_t equals = text.find('=');
    bool overridden = false;
    for (const std::string& mine : environment) {
      if (equals != std::string_view::npos && mine.compare(0, equals + 1, text.substr(0, equals + 1)) == 0) {
        overridden = true;
      }
    }
    if (!overridden) child_environment.push_back(*entry);
  }
  child_environment.push_back(nullptr);

  std::array<int, 2> to_child{-1, -1};
  std::array<int, 2> from_child{-1, -1};
  ROPEPP_CHECK(::pipe(to_child.data()) == 0 && ::pipe(from_child.data()) == 0,
               "failed to create pipes for the PyTorch peer: {}", std::strerror(errno));

  pid_ = ::fork();
  ROPEPP_CHECK(pid_ >= 0, "failed to start the PyTorch peer: {}", std::strerror(errno));
  if (pid_ == 0) {
    // Its own process group, so that a kill also reaches processes it starts.
    ::setpgid(0, 0);
    ::dup2(to_child[0], STDIN_FILENO);
    ::dup2(from_child[1], STDOUT_FILENO);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
    ::execve(child_argv[0], child_argv.data(), child_environment.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also from the parent, so no kill can race the child's own call

  ::close(to_child[0]);
  ::close(from_child[1]);
  to_peer_ = to_child[1];
  from_peer_ = from_child[0];
  try {
    prefill_seconds_ = read_number("prefill_seconds", -1);
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
    // Give the peer a few seconds to quit, then kill its process group.
    int status = 0;
    for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    } else {
      ::kill(-pid_, SIGKILL);  // children it left behind, if any
    }
    pid_ = -1;
  }
}

std::string TorchPeer::read_line() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kLineTimeoutSeconds);
  size_t newline = pending_.find('\n');
  while (newline == std::string::npos) {
    ROPEPP_CHECK(pending_.size() <= kMaxLineBytes, "the PyTorch peer ({}) printed over {} bytes without a line break",
                 name_, kMaxLineBytes);
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd descriptor{from_peer_, POLLIN, 0};
    const int ready = ::poll(&descriptor, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      ::kill(-pid_, SIGKILL);
      fail("the PyTorch peer ({}) printed nothing for {} s and was killed", name_, kLineTimeoutSeconds);
    }
    char buffer[4096];
    const ssize_t n = ::read(from_peer_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    ROPEPP_CHECK(n > 0, "the PyTorch peer ({}) exited without a result; its messages are above", name_);
    pending_.append(buffer, static_cast<size_t>(n));
    newline = pending_.find('\n');
  }
  std::string line = pending_.substr(0, newline);
  pending_.erase(0, newline + 1);
  return line;
}

double TorchPeer::read_number(const std::string& key, int64_t id) {
  const std::string line = read_line();
  ROPEPP_CHECK(line.find('\0') == std::string::npos, "the PyTorch peer printed a NUL byte in '{}'",
               excerpt(line));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {
    fail("the PyTorch peer printed '{}' where a JSON line was expected: {}", excerpt(line), error.what());
  }
  const bool has_number = json.is_object() && json.contains(key) && json[key].is_number();
  const double value = has_number ? json[key].get<double>() : 0.0;
  ROPEPP_CHECK(has_number && std::isfinite(value) && value > 0.0,
               "the PyTorch peer printed '{}': expected an object with a finite positive number \"{}\"",
               excerpt(line), key);
  if (id >= 0) {
    ROPEPP_CHECK(json.contains("id") && json["id"].is_number_integer() && json["id"].get<int64_t>() == id,
                 "the PyTorch peer printed '{}': expected the reply to request {} (\"id\": {})", excerpt(line), id,
                 id);
  }
  return value;
}

double TorchPeer::decode(int tokens) {
  const int64_t id = next_id_++;
  const std::string request = "decode " + std::to_string(tokens) + " " + std::to_string(id) + "\n";
  ROPEPP_CHECK(::write(to_peer_, request.data(), request.size()) == static_cast<ssize_t>(request.size()),
               "failed to send a decode request to the PyTorch peer ({}): {}", name_, std::strerror(errno));
  return read_number("decode_seconds_per_token", id);
}

}  // namespace ropepp::bench
