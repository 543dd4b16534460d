// Crash-safe writes: data goes to a temporary file next to the target, is
// flushed to disk, and only then renamed over the target. A reader sees the old
// file or the new one, never a half-written one.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace ropepp {

// Writes `contents` to `path` atomically. Throws ropepp::Error on failure and
// leaves any earlier file at `path` untouched.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Streams a file atomically: `write` receives a FILE* open on the temporary
// file and must write everything through it.
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::FILE*)>& write);

// Replaces the folder `target` by the complete folder `staging` (same parent
// folder): the old target is moved aside, the staging folder renamed, then the
// old one removed. A crash in between leaves either the old or the new folder
// plus a leftover named `<target>.old-*` that the next call removes.
void replace_directory_atomic(const std::filesystem::path& staging, const std::filesystem::path& target);

// Flushes a folder entry to disk (after a rename inside it).
void sync_directory(const std::filesystem::path& directory);

}  // namespace ropepp
