#!/usr/bin/env bash
# Installs the dependencies and builds ropepp: one command for a fresh Debian bookworm machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
