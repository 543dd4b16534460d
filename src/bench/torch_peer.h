// bench/torch_model.py run as a peer process: it loads a checkpoint, times its
// prefill, then decodes in rounds on request. A benchmark alternates these
// rounds with its own, so both decodes run within seconds of each other on a
// machine whose memory bandwidth drifts.
#pragma once

#include <sys/types.h>

#include <string>

#include <nlohmann/json.hpp>

namespace ropepp::bench {

class TorchPeer {
 public:
  // Starts `/bin/sh -c command` with pipes on its stdin and stdout, and reads
  // the first JSON line (the prefill result). Throws ropepp::Error when the
  // process cannot start, exits, stays silent for 15 minutes, or its first
  // line is not JSON.
  explicit TorchPeer(const std::string& command);
  ~TorchPeer();
  TorchPeer(const TorchPeer&) = delete;
  TorchPeer& operator=(const TorchPeer&) = delete;

  const nlohmann::json& prefill() const { return prefill_; }

  // Decodes `tokens` more tokens and returns PyTorch's median seconds per step.
  double decode(int tokens);

 private:
  nlohmann::json read_line();
  // Asks the peer to quit, closes the pipes and waits for the process,
  // killing it after 5 seconds.
  void shutdown();

  std::string command_;
  pid_t pid_ = -1;
  int to_peer_ = -1;    // the peer's stdin
  int from_peer_ = -1;  // the peer's stdout
  std::string pending_;  // bytes read past the last complete line
  nlohmann::json prefill_;
};

}  // namespace ropepp::bench
