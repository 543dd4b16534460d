#include "cli/commands.h"

namespace ropepp::cli {

void register_all(CLI::App& app, Commands& commands) {
  register_bench(app, commands);
}

}  // namespace ropepp::cli
