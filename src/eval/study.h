// `ropepp study`: the whole RoPE versus RoPE++ comparison in one call.
//
// Steps: fetch the real corpus (`ropepp data fetch`) and hold one book out for
// evaluation. Then train a RoPE, a RoPE++EH and a RoPE++EC model with the same
// data, token budget and seed (one set per seed). Finally run every evaluation
// on the held-out text and write OUT/report.md with tables, plots and
// statements computed from the numbers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ropepp::eval {

struct StudyOptions {
  std::filesystem::path out = "study";
  std::string preset = "small";      // model size preset of `ropepp train`
  int64_t training_length = 512;     // tokens per training sequence
  int64_t tokens = 0;                // training tokens per model; 0: as many as the time budget allows
  int64_t batch_size = 8;            // sequences per optimizer step
  double lr = 1e-3;
  int seeds = 1;
  double budget_minutes = 30.0;      // whole study, training and evaluation
  bool reuse = false;                // reuse models trained by an earlier run into the same OUT
  bool quick = false;                // tiny models and evaluations, for tests
  std::vector<std::string> corpus;   // text files or folders; empty: fetch the real corpus
  std::filesystem::path data_dir;    // where the corpus is fetched; empty: OUT/data
  std::string ropepp_binary;         // program run for `data fetch`; empty: this process's executable
  std::vector<std::string> variants = {"rope", "eh", "ec"};
};

// Every file the report links or writes next to it, relative to OUT.
std::vector<std::string> study_report_files(const StudyOptions& options);

// Runs the study. Throws ropepp::Error on invalid options or when a step fails.
void run_study(const StudyOptions& options);

}  // namespace ropepp::eval
