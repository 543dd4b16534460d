// ropepp: train, evaluate and serve RoPE / RoPE++ language models.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

int main(int argc, char** argv) {
  CLI::App app{"ropepp: train, evaluate and serve language models with RoPE and RoPE++ attention"};
  app.require_subcommand(1);

  std::string log_level = "info";
  int threads = 0;
  app.add_option("--log-level", log_level, "Log verbosity: trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--threads", threads, "Worker threads (0: OMP_NUM_THREADS, else all cores)")->capture_default_str();

  ropepp::cli::Commands commands;
  ropepp::cli::register_all(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  try {
    ropepp::init_logging(log_level);
    ropepp::set_num_threads(threads);
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    std::fprintf(stderr, "%s", app.help().c_str());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
