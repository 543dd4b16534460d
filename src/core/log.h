// Logging: spdlog writing to stderr, so stdout stays free for machine-readable output.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace ropepp {

// Sets up the default logger on stderr. level is one of spdlog's names
// ("trace", "debug", "info", "warn", "error", "off"). Safe to call more than once.
void init_logging(const std::string& level = "info");

}  // namespace ropepp
