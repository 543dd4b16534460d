#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ropepp {

void init_logging(const std::string& level) {
  static bool created = false;
  if (!created) {
    auto logger = spdlog::stderr_color_mt("ropepp");
    logger->set_pattern("%^[%H:%M:%S.%e %l]%$ %v");
    spdlog::set_default_logger(logger);
    created = true;
  }
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace ropepp
