#include "core/paths.h"

namespace ropepp {

std::optional<std::filesystem::path> find_project_file(const std::filesystem::path& relative) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_regular_file(relative, error)) return relative;
  const fs::path program = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path beside = program.parent_path().parent_path() / relative;
    if (fs::is_regular_file(beside, error)) return beside;
  }
  return std::nullopt;
}

}  // namespace ropepp
