// Reference token ids from Hugging Face's Rust tokenizers (npm package
// @anush008/tokenizers 0.6.0), for the tokenizer tests.
//
// Usage: node golden.mjs REQUEST.json
// REQUEST.json:
//   {"node_modules": "DIR/node_modules",
//    "tokenizer": {"json": "tokenizer.json"} or {"vocab": "vocab.json", "merges": "merges.txt"},
//    "sets": [{"strings": ["...", ...], "allow_special": true|false}, ...],
//    "text_file": "book.txt"   (optional, encoded without special tokens),
//    "save_json": "out.json"   (optional: write the tokenizer as tokenizer.json)}
// Prints {"sets": [[ids of each string], ...], "text_file_ids": [...]} on stdout.
//
// Without allow_special, special added tokens are dropped from the tokenizer
// first, so their text is encoded as ordinary text (the Rust library always
// matches added tokens in text).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(path.join(path.resolve(request.node_modules), 'index.js'));
const hf = require('@anush008/tokenizers');

async function loadTokenizer(allowSpecial) {
  const spec = request.tokenizer;
  if (spec.json) {
    const config = JSON.parse(readFileSync(spec.json, 'utf8'));
    if (!allowSpecial) {
      config.added_tokens = (config.added_tokens || []).filter((token) => !token.special);
    }
    return hf.Tokenizer.fromString(JSON.stringify(config));
  }
  const model = await hf.BPE.fromFile(spec.vocab, spec.merges);
  const tokenizer = new hf.Tokenizer(model);
  tokenizer.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
  if (allowSpecial) tokenizer.addSpecialTokens(['<|endoftext|>']);
  return tokenizer;
}

const tokenizers = new Map();
async function tokenizerFor(allowSpecial) {
  if (!tokenizers.has(allowSpecial)) tokenizers.set(allowSpecial, await loadTokenizer(allowSpecial));
  return tokenizers.get(allowSpecial);
}

const options = { addSpecialTokens: false };
const result = { sets: [] };
for (const set of request.sets || []) {
  const tokenizer = await tokenizerFor(Boolean(set.allow_special));
  const ids = [];
  for (const text of set.strings) ids.push((await tokenizer.encode(text, null, options)).getIds());
  result.sets.push(ids);
}
if (request.text_file) {
  const tokenizer = await tokenizerFor(false);
  result.text_file_ids = (await tokenizer.encode(readFileSync(request.text_file, 'utf8'), null, options)).getIds();
}
if (request.save_json) (await tokenizerFor(true)).save(request.save_json, false);
process.stdout.write(JSON.stringify(result));
