#include "bench/torch_peer.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/error.h"

namespace ropepp::bench {

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
  to_peer_ = ::fdopen(to_child[1], "w");
  from_peer_ = ::fdopen(from_child[0], "r");
  try {
    ROPEPP_CHECK(to_peer_ != nullptr && from_peer_ != nullptr, "failed to open the PyTorch peer's pipes");
    prefill_ = read_line();
  } catch (...) {
    // The destructor does not run for a constructor that throws.
    shutdown();
    throw;
  }
}

TorchPeer::~TorchPeer() { shutdown(); }

void TorchPeer::shutdown() {
  if (to_peer_ != nullptr) {
    std::fputs("quit\n", to_peer_);
    std::fclose(to_peer_);
    to_peer_ = nullptr;
  }
  if (from_peer_ != nullptr) {
    std::fclose(from_peer_);
    from_peer_ = nullptr;
  }
  if (pid_ > 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

nlohmann::json TorchPeer::read_line() {
  std::string line;
  int c = 0;
  while ((c = std::fgetc(from_peer_)) != EOF && c != '\n') line.push_back(static_cast<char>(c));
  ROPEPP_CHECK(!line.empty(), "the PyTorch peer ({}) exited without a result; its messages are above", command_);
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {
    fail("the PyTorch peer printed '{}' where a JSON line was expected: {}", line, error.what());
  }
}

double TorchPeer::decode(int tokens) {
  std::fprintf(to_peer_, "decode %d\n", tokens);
  std::fflush(to_peer_);
  const nlohmann::json reply = read_line();
  ROPEPP_CHECK(reply.contains("decode_seconds_per_token") && reply["decode_seconds_per_token"].is_number(),
               "the PyTorch peer's reply '{}' has no number decode_seconds_per_token", reply.dump());
  return reply["decode_seconds_per_token"].get<double>();
}

}  // namespace ropepp::bench
