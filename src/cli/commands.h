// Subcommands of the ropepp program. Each lives in its own file and registers
// itself with register_<name>(); main() parses, then runs the chosen one.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace ropepp::cli {

struct Command {
  CLI::App* app = nullptr;       // the (sub)subcommand whose options were parsed
  std::function<int()> run;      // returns the process exit code
};

using Commands = std::vector<Command>;

void register_all(CLI::App& app, Commands& commands);

// One line per subcommand file.
void register_bench(CLI::App& app, Commands& commands);
void register_init(CLI::App& app, Commands& commands);
void register_logits(CLI::App& app, Commands& commands);
void register_generate(CLI::App& app, Commands& commands);
void register_bench_model(CLI::App& app, Commands& commands);  // after register_bench
void register_tokenize(CLI::App& app, Commands& commands);
void register_eval(CLI::App& app, Commands& commands);
void register_study(CLI::App& app, Commands& commands);
void register_bench_tokenizer(CLI::App& app, Commands& commands);
void register_train(CLI::App& app, Commands& commands);
void register_data(CLI::App& app, Commands& commands);
void register_bench_train(CLI::App& app, Commands& commands);  // after register_bench
void register_serve(CLI::App& app, Commands& commands);

}  // namespace ropepp::cli
