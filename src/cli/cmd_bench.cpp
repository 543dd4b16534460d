// `ropepp bench ...`: performance measurements.
#include "cli/commands.h"

namespace ropepp::cli {

void register_bench(CLI::App& app, Commands& commands) {
  CLI::App* bench = app.add_subcommand("bench", "Measure kernel and model speed against the machine's limits");
  bench->require_subcommand(1);
  (void)commands;
}

}  // namespace ropepp::cli
