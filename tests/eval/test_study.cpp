#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "eval/study.h"

namespace ropepp::eval {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

// A real book when scripts/fetch_tokenizers.sh has run, else a generated
// English-like text (enough for the pipeline, not for learning).
fs::path study_corpus(const fs::path& folder) {
  const fs::path book = fs::path(ROPEPP_SOURCE_DIR) / "data/tokenizers/text/moby-dick.txt";
  std::string text;
  if (fs::exists(book)) {
    text = read_file(book).substr(0, 120000);
  } else {
    const char* words[] = {"the", "whale", "sea", "ship", "captain", "white", "deep", "sailed", "over", "and",
                           "a", "long", "voyage", "of", "harpoon", "crew", "saw", "storm", "night", "morning"};
    uint64_t state = 12345;
    while (text.size() < 120000) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      text += words[(state >> 33) % 20];
      text += (state >> 60) == 0 ? ".\n" : " ";
    }
  }
  const fs::path file = folder / "corpus.txt";
  std::ofstream(file, std::ios::binary) << text;
  return file;
}

TEST(Study, QuickRunWritesEveryReportFile) {
  const fs::path folder = fs::temp_directory_path() / ("ropepp_study_" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);

  StudyOptions options;
  options.out = folder / "study";
  options.quick = true;
  options.corpus = {study_corpus(folder).string()};
  run_study(options);

  for (const std::string& file : study_report_files(options)) {
    const fs::path path = options.out / file;
    ASSERT_TRUE(fs::exists(path)) << file << " is missing";
    EXPECT_GT(fs::file_size(path), 0u) << file << " is empty";
  }

  // Every image and file the report links exists.
  const std::string report = read_file(options.out / "report.md");
  const std::regex link(R"(\]\(([^)]+)\))");
  int links = 0;
  for (auto it = std::sregex_iterator(report.begin(), report.end(), link); it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(fs::exists(options.out / (*it)[1].str())) << "report.md links a missing file: " << (*it)[1];
    ++links;
  }
  EXPECT_GE(links, 20);
  for (const char* section : {"## Training", "## Perplexity on held-out text", "## Length extrapolation",
                              "## Passkey retrieval", "## Query noise ablation", "## Attention",
                              "## Characteristic curves", "## What the numbers show"}) {
    EXPECT_NE(report.find(section), std::string::npos) << "report.md lacks " << section;
  }
  for (const char* label : {"| RoPE |", "| RoPE++EH |", "| RoPE++EC |"}) {
    EXPECT_NE(report.find(label), std::string::npos) << "report.md lacks a row for " << label;
  }

  const nlohmann::json results = nlohmann::json::parse(read_file(options.out / "results.json"));
  ASSERT_EQ(results["models"].size(), 3u);
  for (const auto& model : results["models"]) {
    EXPECT_GT(model["perplexity"].get<double>(), 1.0);
    EXPECT_FALSE(model["extrapolation"].empty());
  }

  // --reuse evaluates the same checkpoints again without retraining.
  const fs::path record = options.out / "models/ec-seed0/study_run.json";
  ASSERT_TRUE(fs::exists(record));
  const auto trained_at = fs::last_write_time(record);
  options.reuse = true;
  run_study(options);
  EXPECT_EQ(fs::last_write_time(record), trained_at) << "--reuse retrained a model";
  const nlohmann::json again = nlohmann::json::parse(read_file(options.out / "results.json"));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(again["models"][i]["perplexity"], results["models"][i]["perplexity"])
        << "the same checkpoint must give the same perplexity";
  }
  fs::remove_all(folder);
}

}  // namespace
}  // namespace ropepp::eval
