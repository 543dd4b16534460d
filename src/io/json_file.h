// JSON files of a checkpoint folder (config.json, the shard index) read with
// errors that name the file.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace ropepp {

// Reads and parses a JSON file. Throws ropepp::Error naming the file when it
// is missing, unreadable or a folder, or with the byte position when the JSON
// is invalid.
nlohmann::json read_json_file(const std::filesystem::path& path);

// The message of a JSON parse error with bytes outside printable ASCII
// replaced by '?', so that damaged input cannot put raw binary into a log.
std::string printable_parse_error(const nlohmann::json::exception& error);

}  // namespace ropepp
