// `ropepp study`: trains RoPE, RoPE++EH and RoPE++EC on real text under one
// budget, runs every evaluation and writes OUT/report.md. Works with no
// arguments.
#include <memory>

#include "cli/commands.h"
#include "eval/study.h"

namespace ropepp::cli {

void register_study(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<eval::StudyOptions>();
  auto out = std::make_shared<std::string>("study");
  auto data_dir = std::make_shared<std::string>();
  CLI::App* study = app.add_subcommand(
      "study",
      "Compare RoPE, RoPE++EH and RoPE++EC end to end: fetch real text, train the three models with the same data, "
      "tokens and seed, run every evaluation and write OUT/report.md (about 30 minutes on 2 cores by default)");

  study->add_option("--out", *out, "Folder for the models, evaluation files and report.md")->capture_default_str();
  study->add_option("--preset", options->preset, "Model size preset (tiny, small, 56m, 376m, ...)")
      ->capture_default_str();
  study->add_option("--tokens", options->tokens,
                    "Training tokens per model (0: as many as 60% of --budget-minutes allows, measured)")
      ->capture_default_str();
  study->add_option("--training-length", options->training_length, "Tokens per training sequence")
      ->capture_default_str();
  study->add_option("--batch-size", options->batch_size, "Sequences per optimizer step")->capture_default_str();
  study->add_option("--lr", options->lr, "Peak learning rate")->capture_default_str();
  study->add_option("--seeds", options->seeds, "Seeds per variant; tables show mean and standard deviation")
      ->capture_default_str();
  study->add_option("--budget-minutes", options->budget_minutes,
                    "Wall-clock budget of the whole study in minutes, used to size training when --tokens is 0")
      ->capture_default_str();
  study->add_flag("--reuse", options->reuse, "Reuse models that an earlier study trained into the same --out");
  study->add_flag("--quick", options->quick,
                  "Tiny models, a few training steps and small evaluations (a smoke test of the pipeline)");
  study->add_option("--corpus", options->corpus,
                    "Text or JSON-lines files or folders to use instead of fetching the real corpus");
  study->add_option("--data-dir", *data_dir, "Where `ropepp data fetch` puts the corpus (default: OUT/data)");
  study->add_option("--variants", options->variants, "Variants to compare (rope, eh, ec)")->capture_default_str();

  commands.push_back({study, [options, out, data_dir] {
                        options->out = *out;
                        options->data_dir = *data_dir;
                        eval::run_study(*options);
                        return 0;
                      }});
}

}  // namespace ropepp::cli
