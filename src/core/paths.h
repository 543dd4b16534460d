// Locating files that ship with the repository (scripts, baselines) from a
// program that may run from any folder.
#pragma once

#include <filesystem>
#include <optional>

namespace ropepp {

// Returns `relative` when it exists under the working folder, else the same
// path under the folder above the running program's (the repository root for a
// binary in ./build), else nothing.
std::optional<std::filesystem::path> find_project_file(const std::filesystem::path& relative);

}  // namespace ropepp
