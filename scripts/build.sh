#!/usr/bin/env bash
# Configures and builds ropepp in release mode into ./build (or $ROPEPP_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${ROPEPP_BUILD_DIR:-build}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
