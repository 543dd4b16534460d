// The `ropepp bench` parent command, shared by the files that add children to it.
#pragma once

#include <CLI/CLI.hpp>

namespace ropepp::cli {

// Returns the `bench` subcommand of app, creating it on first use, so that the
// files adding `bench <child>` may register in any order.
CLI::App* bench_command(CLI::App& app);

}  // namespace ropepp::cli
