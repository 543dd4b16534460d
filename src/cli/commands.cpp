#include "cli/commands.h"

namespace ropepp::cli {

void register_all(CLI::App& app, Commands& commands) {
  register_bench(app, commands);
  register_init(app, commands);
  register_logits(app, commands);
  register_generate(app, commands);
  register_bench_model(app, commands);
  register_tokenize(app, commands);
  register_eval(app, commands);
  register_study(app, commands);
  register_bench_tokenizer(app, commands);
  register_train(app, commands);
  register_data(app, commands);
  register_bench_train(app, commands);
  register_serve(app, commands);
}

}  // namespace ropepp::cli
