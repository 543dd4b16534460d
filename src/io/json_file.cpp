#include "io/json_file.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace ropepp {

std::string printable_parse_error(const nlohmann::json::exception& error) {
  std::string message = error.what();
  for (char& c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) c = '?';
  }
  return message;
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::error_code ignored;  // an unreadable path fails below as "not readable"
  if (std::filesystem::is_directory(path, ignored)) fail("{}: is a folder; expected a JSON file", path.string());
  std::ifstream stream(path, std::ios::binary);
  if (!stream) fail("{}: not found or not readable", path.string());
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& error) {
    fail("{}: invalid JSON at byte {}: {}", path.string(), error.byte, printable_parse_error(error));
  } catch (const nlohmann::json::exception& error) {
    // nlohmann::json reports a number too large for a double as out_of_range.
    fail("{}: invalid JSON: {}", path.string(), printable_parse_error(error));
  }
}

}  // namespace ropepp
