#!/usr/bin/env python3
"""Hugging Face transformers fixtures: one random-weight tiny model per family.

For every tiny configuration engine/testdata/reference/<name>/config.json (one
per family variant; a family added later brings its own), this script

  1. writes a random-weight model with tether's own `tether testmodel` (so tether
     and transformers read the very same safetensors file), with the vocabulary
     raised to VOCAB (the test tokenizer testmodel writes needs >= 260 ids);
  2. loads it with transformers (AutoModelForCausalLM, float32, eager attention,
     on the CPU) and runs B=2 sequences of T=12 random token ids;
  3. writes <out>/<name>/{config.json, model.safetensors, reference.safetensors}
     in the layout of engine/testdata/reference (see its README):
       input_ids     [B, T]       token ids stored as float32
       hidden_states [L+1, B, T, H]  0: embedding output; i: raw output of block i-1
                                  (forward hook; transformers' own last
                                  hidden_states entry is the final-normed one)
       final_hidden  [B, T, H]    transformers' hidden_states[L] (after the final norm)
       logits        [B, T, V]
     and the transformers and torch versions in the safetensors metadata.

engine's TestHuggingFaceFixtures compares every backend against these at 1e-4
relative. Needs torch, transformers (>= 4.50 for gemma3_text) and safetensors.

Usage (from the repository root):
  python3 scripts/hf_fixtures.py [--tether bin/tether] [--out engine/testdata/hf] [name ...]
Exit status 1 if any model failed (the others are still written).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "engine", "testdata", "reference")
VOCAB = 320
B, T = 2, 12
KEEP = ("config.json", "model.safetensors")


def dtype_kwargs(dtype):
    """from_pretrained's dtype keyword: `dtype` from transformers 4.56, `torch_dtype` before."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def make_model(tether, name, out_dir, seed):
    """Writes the random-weight model of configs/<name> to out_dir with tether testmodel."""
    with open(os.path.join(CONFIGS, name, "config.json")) as f:
        cfg = json.load(f)
    cfg["vocab_size"] = max(cfg["vocab_size"], VOCAB)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        gen = os.path.join(tmp, "model")
        subprocess.run([tether, "testmodel", "--config", cfg_path, "--out", gen, "--seed", str(seed), "--dtype", "f32"],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.makedirs(out_dir, exist_ok=True)
        for f in KEEP:
            shutil.copyfile(os.path.join(gen, f), os.path.join(out_dir, f))
    return cfg


def run_transformers(model_dir, cfg, seed):
    """Runs transformers on model_dir; returns the tensors of reference.safetensors."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **dtype_kwargs(torch.float32))
    model.eval()
    layers = model.model.layers
    raw = {}

    def hook(i):
        def fn(_module, _inputs, output):
            raw[i] = (output[0] if isinstance(output, tuple) else output).detach().float().clone()
        return fn

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
    bos = cfg.get("bos_token_id")
    if isinstance(bos, int) and 0 <= bos < cfg["vocab_size"]:
        ids[0, 0] = bos
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    for h in handles:
        h.remove()
    n = len(layers)
    if len(out.hidden_states) != n + 1 or len(raw) != n:
        raise RuntimeError(f"{model_dir}: {len(out.hidden_states)} hidden states and {len(raw)} hooked blocks for {n} layers")
    # transformers' hidden_states[i] for i < n is the raw output of block i-1
    # (or the embedding); check the hook agrees before trusting it for block n-1.
    for i in range(1, n):
        d = (out.hidden_states[i].float() - raw[i - 1]).abs().max().item()
        if d > 1e-6 * (1 + raw[i - 1].abs().max().item()):
            raise RuntimeError(f"{model_dir}: hooked output of block {i - 1} differs from hidden_states[{i}] by {d}")
    hidden = [out.hidden_states[0].float()] + [raw[i] for i in range(n)]
    return {
        "input_ids": ids.float().contiguous(),
        "hidden_states": torch.stack(hidden).contiguous(),
        "final_hidden": out.hidden_states[n].float().contiguous(),
        "logits": out.logits.float().contiguous(),
    }, type(model).__name__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tether", default=os.path.join(ROOT, "bin", "tether"), help="tether binary (for testmodel)")
    ap.add_argument("--out", default=os.path.join(ROOT, "engine", "testdata", "hf"), help="output directory")
    ap.add_argument("--seed", type=int, default=1, help="weights and input seed")
    ap.add_argument("names", nargs="*", help="fixture names (default: every engine/testdata/reference/*/config.json)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    names = args.names or sorted(d for d in os.listdir(CONFIGS) if os.path.isfile(os.path.join(CONFIGS, d, "config.json")))
    meta = {"made_by": "scripts/hf_fixtures.py", "transformers": transformers.__version__, "torch": torch.__version__,
            "attn_implementation": "eager", "dtype": "float32", "seed": str(args.seed)}
    failed = []
    for name in names:
        start = time.time()
        out_dir = os.path.join(args.out, name)
        try:
            cfg = make_model(args.tether, name, out_dir, args.seed)
            tensors, arch = run_transformers(out_dir, cfg, args.seed)
            save_file(tensors, os.path.join(out_dir, "reference.safetensors"), metadata=dict(meta, architecture=arch))
            print(f"{name}: {arch}, logits {list(tensors['logits'].shape)}, {time.time() - start:.1f}s", flush=True)
        except Exception as e:  # report and go on with the other families
            failed.append(name)
            detail = e.stdout.decode(errors="replace") if isinstance(e, subprocess.CalledProcessError) else ""
            print(f"{name}: FAILED: {type(e).__name__}: {e} {detail}", flush=True)
            shutil.rmtree(out_dir, ignore_errors=True)
    if failed:
        print("failed:", ", ".join(failed))
        sys.exit(1)
    print(f"wrote {len(names)} fixtures to {args.out} with transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
