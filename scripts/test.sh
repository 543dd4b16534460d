#!/usr/bin/env bash
# Installs the dependencies, builds ropepp and runs the test suite.
# ROPEPP_LONG_TESTS=1 also runs the slow checks (whole books, large shapes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
cd "${ROPEPP_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900
