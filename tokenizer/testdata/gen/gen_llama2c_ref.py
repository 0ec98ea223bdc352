#!/usr/bin/env python3
"""Writes ../fixtures/llama2c_tok512.json: ids from llama2.c's own encoder.

Needs a C compiler and a file holding llama2.c's str_lookup/compare_tokens/
bpe_encode (from run.c of karpathy/llama2.c): python3 gen_llama2c_ref.py ENCODE_C
Texts: ../stories.jsonl and the corpus entries without "<s>", "</s>", "<unk>",
U+2581 (handled differently by tokenizer.json by design), NUL (ends a C
string), longer than 600 bytes (the merge loop is quadratic), or empty (this
llama2.c version adds the dummy prefix even to an empty text).
"""
import json, os, struct, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
tok = os.path.join(here, "..", "..", "..", "..", "shared", "models", "stories260K", "tok512.bin")
texts = [json.loads(l) for l in open(os.path.join(here, "..", "stories.jsonl"), encoding="utf-8") if l.strip()]
for l in open(os.path.join(here, "..", "corpus.jsonl"), encoding="utf-8"):
    s = json.loads(l)
    if any(x in s for x in ("<s>", "</s>", "<unk>", "\u2581", "\0")) or len(s.encode()) > 600:
        continue
    texts.append(s)
texts = [t for t in texts if t != ""]
with tempfile.TemporaryDirectory() as d:
    exe = os.path.join(d, "llama2c_ref")
    subprocess.check_call(["cc", "-O2", f'-DLLAMA2C_ENCODE="{os.path.abspath(sys.argv[1])}"', os.path.join(here, "llama2c_ref.c"), "-o", exe])
    tb = os.path.join(d, "texts.bin")
    with open(tb, "wb") as f:
        for t in texts:
            b = t.encode()
            f.write(struct.pack("<I", len(b)) + b)
    out = subprocess.check_output([exe, tok, tb]).decode().splitlines()
ids = [[int(x) for x in line.split()] for line in out]
assert len(ids) == len(texts)
json.dump({"source": "llama2.c run.c bpe_encode (commit bd182289), tok512.bin of stories260K", "texts": texts, "ids": ids},
          open(os.path.join(here, "..", "fixtures", "llama2c_tok512.json"), "w"), ensure_ascii=False, separators=(",", ":"))
print(f"{len(texts)} texts")
