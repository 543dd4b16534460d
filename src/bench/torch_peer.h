// bench/torch_model.py run as a peer process: it loads a checkpoint, times its
// prefill, then decodes in rounds on request. A benchmark alternates these
// rounds with its own, so both decodes run within seconds of each other on a
// machine whose memory bandwidth drifts.
//
// Protocol, one line each way: the peer first prints {"prefill_seconds": s};
// then each request "decode N ID" gets {"decode_seconds_per_token": s,
// "id": ID}; "quit" ends it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace ropepp::bench {

class TorchPeer {
 public:
  // Runs argv[0] (a path) with the arguments argv[1..] and the extra
  // environment variables `environment` ("NAME=value") in a process group of
  // its own. Its stdin and stdout are pipes, and stderr stays the terminal.
  // Then reads the prefill line. Throws ropepp::Error when the process cannot
  // start, exits, stays silent for 15 minutes, or prints anything but the
  // expected line.
  TorchPeer(const std::vector<std::string>& argv, const std::vector<std::string>& environment);
  ~TorchPeer();
  TorchPeer(const TorchPeer&) = delete;
  TorchPeer& operator=(const TorchPeer&) = delete;

  double prefill_seconds() const { return prefill_seconds_; }

  // Decodes `tokens` more tokens and returns PyTorch's median seconds per step.
  double decode(int tokens);

 private:
  // The next line of the peer's stdout, without its line break.
  std::string read_line();
  // The finite positive number `key` of a JSON object line; with `id` >= 0
  // the line must also carry that "id".
  double read_number(const std::string& key, int64_t id);
  // Asks the peer to quit, closes the pipes and waits for the process,
  // killing its process group after 5 seconds.
  void shutdown();

  std::string name_;  // the command line, for messages
  pid_t pid_ = -1;
  int to_peer_ = -1;    // the peer's stdin
  int from_peer_ = -1;  // the peer's stdout
  std::string pending_;  // bytes read past the last complete line
  int64_t next_id_ = 0;
  double prefill_seconds_ = 0.0;
};

}  // namespace ropepp::bench
