// Encoding speed of Hugging Face's Rust tokenizers (npm @anush008/tokenizers
// 0.6.0) on one text file, for `ropepp bench tokenizer`.
//
// Usage: node rust_tokenizer.mjs NODE_MODULES TOKENIZER TEXT_FILE REPEATS
// TOKENIZER is a tokenizer.json file or a folder with tokenizer.json or with
// vocab.json + merges.txt. Prints one JSON object on stdout: load and encode
// times in seconds (first encode with a cold cache, best of REPEATS), the
// token count and an FNV-1a checksum of the ids to compare with ropepp's.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [nodeModules, tokenizerPath, textFile, repeatsText] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeModules), 'index.js'));
const hf = require('@anush008/tokenizers');

async function load() {
  let file = tokenizerPath;
  if (statSync(file).isDirectory() && existsSync(path.join(file, 'tokenizer.json'))) {
    file = path.join(file, 'tokenizer.json');
  }
  if (!statSync(file).isDirectory()) return hf.Tokenizer.fromFile(file);
  const model = await hf.BPE.fromFile(path.join(file, 'vocab.json'), path.join(file, 'merges.txt'));
  const tokenizer = new hf.Tokenizer(model);
  tokenizer.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
  return tokenizer;
}

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

const loadStart = process.hrtime.bigint();
const tokenizer = await load();
const loadSeconds = seconds(loadStart);

const text = readFileSync(textFile, 'utf8');
const repeats = Math.max(1, Number(repeatsText) || 1);
let ids = [];
let firstSeconds = 0;
let bestSeconds = Infinity;
for (let i = 0; i < repeats; ++i) {
  const start = process.hrtime.bigint();
  const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
  ids = encoding.getIds();
  const elapsed = seconds(start);
  if (i === 0) firstSeconds = elapsed;
  bestSeconds = Math.min(bestSeconds, elapsed);
}

// FNV-1a over the ids as 32-bit little-endian words, as ropepp computes it.
let hash = 0xcbf29ce484222325n;
const prime = 0x100000001b3n;
const mask = (1n << 64n) - 1n;
for (const id of ids) {
  for (let shift = 0; shift < 32; shift += 8) {
    hash ^= BigInt((id >>> shift) & 0xff);
    hash = (hash * prime) & mask;
  }
}

process.stdout.write(JSON.stringify({
  load_s: loadSeconds,
  first_s: firstSeconds,
  best_s: bestSeconds,
  tokens: ids.length,
  checksum: hash.toString(16),
}));
