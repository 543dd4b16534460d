#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/error.h"

namespace ropepp {
namespace fs = std::filesystem;
namespace {

std::string random_suffix() {
  std::random_device device;
  return fmt::format("{:08x}", device());
}

}  // namespace

void sync_directory(const fs::path& directory) {
  const int fd = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& write) {
  const fs::path temporary = path.string() + ".tmp-" + random_suffix();
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) {
    fail("cannot write {}: {} (check that the folder exists and is writable)", temporary.string(),
         std::strerror(errno));
  }
  try {
    write(file);
    if (std::fflush(file) != 0 || ::fsync(::fileno(file)) != 0) {
      fail("writing {} failed: {} (is the disk full?)", temporary.string(), std::strerror(errno));
    }
  } catch (...) {
    std::fclose(file);
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
  if (std::fclose(file) != 0) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail("closing {} failed: {}", temporary.string(), std::strerror(errno));
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail("cannot rename {} to {}: {}", temporary.string(), path.string(), error.message());
  }
  sync_directory(path.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  write_file_atomic(path, [&](std::FILE* file) {
    if (!contents.empty() && std::fwrite(contents.data(), 1, contents.size(), file) != contents.size()) {
      fail("writing {} failed: {} (is the disk full?)", path.string(), std::strerror(errno));
    }
  });
}

void replace_directory_atomic(const fs::path& staging, const fs::path& target) {
  std::error_code error;
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();

  // Leftovers of an earlier interrupted replacement.
  for (const auto& entry : fs::directory_iterator(parent, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(target.filename().string() + ".old-", 0) == 0) {
      fs::remove_all(entry.path(), error);
    }
  }

  fs::path old;
  if (fs::exists(target)) {
    old = target.string() + ".old-" + random_suffix();
    fs::rename(target, old, error);
    if (error) fail("cannot move {} aside: {}", target.string(), error.message());
  }
  fs::rename(staging, target, error);
  if (error) {
    if (!old.empty()) fs::rename(old, target, error);
    fail("cannot rename {} to {}: {}", staging.string(), target.string(), error.message());
  }
  sync_directory(parent);
  if (!old.empty()) fs::remove_all(old, error);
}

}  // namespace ropepp
