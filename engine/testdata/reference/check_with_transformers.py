#!/usr/bin/env python3
"""Cross-check the fixtures against Hugging Face transformers' own modeling code.

Needs torch, transformers (>= 4.50 for gemma3_text) and safetensors. For each
fixture directory: load it with AutoModelForCausalLM (float32, eager attention),
run the stored input_ids with output_hidden_states=True, and compare:

  transformers hidden_states[0..L-1]  vs  reference hidden_states[0..L-1]
  transformers hidden_states[L]       vs  reference final_hidden
      (transformers puts the final-normed tensor in the last slot)
  raw output of the last decoder block (forward hook) vs reference hidden_states[L]
  logits                              vs  reference logits

Usage: python3 engine/testdata/reference/check_with_transformers.py [name ...]
Exit status 1 if any comparison exceeds the tolerance.
"""

import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["llama", "llama_untied", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
ATOL, RTOL = 2e-4, 1e-4


def compare(label, got, want):
    got = got.detach().float().cpu()
    diff = (got - want).abs().max().item()
    ok = got.shape == want.shape and torch.allclose(got, want, atol=ATOL, rtol=RTOL)
    print(f"  {label:28s} max|diff|={diff:.3e} {'ok' if ok else 'MISMATCH'}")
    return ok


def check(name):
    directory = os.path.join(HERE, name)
    ref = load_file(os.path.join(directory, "reference.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(
        directory, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    layers = model.model.layers
    raw_last = {}

    def hook(_module, _inputs, output):
        raw_last["h"] = output[0] if isinstance(output, tuple) else output

    handle = layers[-1].register_forward_hook(hook)
    ids = ref["input_ids"].long()
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    handle.remove()

    n = len(layers)
    print(f"{name}: {type(model).__name__}, {n} layers")
    ok = len(out.hidden_states) == n + 1
    for i in range(n):
        ok &= compare(f"hidden_states[{i}]", out.hidden_states[i], ref["hidden_states"][i])
    ok &= compare(f"hidden_states[{n}] (normed)", out.hidden_states[n], ref["final_hidden"])
    ok &= compare("last block raw output", raw_last["h"], ref["hidden_states"][n])
    ok &= compare("logits", out.logits, ref["logits"])
    return ok


def main():
    names = sys.argv[1:] or NAMES
    failed = [n for n in names if not check(n)]
    if failed:
        print("MISMATCH in:", ", ".join(failed))
        sys.exit(1)
    print("all fixtures agree with transformers")


if __name__ == "__main__":
    main()
