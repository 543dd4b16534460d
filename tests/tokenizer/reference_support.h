// Access to the real tokenizers and to Hugging Face's Rust tokenizers (through
// Node.js) for the reference tests. The files come from
// scripts/fetch_tokenizers.sh, which these helpers run when files are missing.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ropepp::testing {

// data/tokenizers in the source tree, or $ROPEPP_TOKENIZER_DIR.
std::filesystem::path tokenizer_data_dir();

// Returns "" when the tokenizers, the book and Node.js with the Rust
// tokenizers are ready (fetching them once per process if needed), else the
// reason they are not, for GTEST_SKIP.
std::string reference_unavailable_reason();

// Folder in the build tree where reference outputs are cached.
std::filesystem::path golden_cache_dir();

// Runs tests/tokenizer/golden.mjs with `request` (node_modules is filled in)
// and returns its parsed output. Throws std::runtime_error on failure.
nlohmann::json run_reference(nlohmann::json request);

}  // namespace ropepp::testing

// Skips the current test when the reference data cannot be had.
#define ROPEPP_REQUIRE_REFERENCE()                                                    \
  do {                                                                                \
    const std::string reason = ::ropepp::testing::reference_unavailable_reason();     \
    if (!reason.empty()) GTEST_SKIP() << reason;                                      \
  } while (0)
