#!/usr/bin/env python3
"""Hugging Face transformers speed on a tether model directory, for tether / transformers ratios.

Loads MODEL (a Hugging Face directory, e.g. random weights written by
`tether testmodel --dtype bf16`) with transformers and times greedy generation
of NEW tokens after a PROMPT-token random prompt, per batch size and mode:

  eager     attn_implementation="eager", dynamic cache
  compiled  torch.compile of the forward pass with a static cache (skipped, with the
            error recorded, when torch.compile fails)

Decode tokens/s excludes the prompt: (NEW - 1) tokens per sequence over the time of
a NEW-token generation minus the time of a 1-token one (the prefill), as tether's
`bench perf` counts decode steps. With --bandwidth it also measures the device's
memory read bandwidth (best of several sums over a large buffer), for the decode
floor (weight bytes / bandwidth).

Prints one JSON object (and writes it to --json). Runs on the CPU too (--device cpu)
for a tiny model, which is how it can be tried without a GPU.

Usage:
  python3 scripts/hf_compare.py --model DIR [--device cuda] [--dtype bfloat16]
      [--batches 1,32] [--prompt 128] [--new 128] [--modes eager,compiled]
      [--bandwidth] [--json out.json]
"""

import argparse
import json
import os
import sys
import time
import traceback

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def dtype_kwargs(dtype):
    """from_pretrained's dtype keyword: `dtype` from transformers 4.56, `torch_dtype` before."""
    import transformers
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_bandwidth(device, gib=4.0, rounds=10):
    """Best read bandwidth (GB/s, 1e9 bytes/s) of summing a gib-GiB float32 buffer."""
    n = int(gib * (1 << 30)) // 4
    x = torch.ones(n, dtype=torch.float32, device=device)
    best = float("inf")
    for _ in range(rounds):
        sync(device)
        t = time.perf_counter()
        s = x.sum()
        sync(device)
        best = min(best, time.perf_counter() - t)
    del x, s
    return n * 4 / best / 1e9


def load(model_dir, dtype, device, mode):
    from transformers import AutoModelForCausalLM  # only here: --modes none needs torch alone
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **dtype_kwargs(dtype))
    model.to(device).eval()
    gc = model.generation_config
    gc.eos_token_id = None  # random weights emit EOS by chance: always generate NEW tokens
    gc.pad_token_id = 0
    gc.do_sample = False
    for k in ("temperature", "top_p", "top_k"):
        if hasattr(gc, k):
            setattr(gc, k, None)
    if mode == "compiled":
        gc.cache_implementation = "static"
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    return model


def generate_seconds(model, ids, new, device):
    sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             min_new_tokens=new, do_sample=False)
    sync(device)
    dt = time.perf_counter() - t
    if out.shape[1] != ids.shape[1] + new:
        raise RuntimeError(f"generated {out.shape[1] - ids.shape[1]} tokens, expected {new}")
    return dt


def run_mode(args, mode, vocab):
    rows = []
    model = load(args.model, DTYPES[args.dtype], args.device, mode)
    g = torch.Generator().manual_seed(1)
    for batch in args.batches:
        row = {"mode": mode, "batch": batch, "prompt_tokens": args.prompt, "new_tokens": args.new}
        try:
            ids = torch.randint(0, vocab, (batch, args.prompt), generator=g).to(args.device)
            t0 = time.perf_counter()
            generate_seconds(model, ids, args.new, args.device)  # warm-up (compiles)
            generate_seconds(model, ids, 1, args.device)
            row["warmup_s"] = time.perf_counter() - t0
            full = min(generate_seconds(model, ids, args.new, args.device) for _ in range(args.repeats))
            prefill = min(generate_seconds(model, ids, 1, args.device) for _ in range(args.repeats))
            row.update(total_s=full, prefill_s=prefill,
                       total_tps=batch * args.new / full,
                       decode_tps=batch * (args.new - 1) / max(full - prefill, 1e-9),
                       prefill_tps=batch * args.prompt / prefill)
        except Exception as e:  # record and go on with the other sizes
            row["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="Hugging Face model directory (not needed with --modes none)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens per sequence")
    ap.add_argument("--new", type=int, default=128, help="new tokens per sequence (greedy)")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many timed runs")
    ap.add_argument("--modes", default="eager,compiled", help="eager and/or compiled, or none (only --bandwidth)")
    ap.add_argument("--bandwidth", action="store_true", help="also measure the device's read bandwidth")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    modes = [] if args.modes == "none" else args.modes.split(",")
    if any(m not in ("eager", "compiled") for m in modes):
        ap.error(f"--modes {args.modes}: expected eager, compiled or none")
    if modes and not args.model:
        ap.error("--model is needed to time generation")
    if args.new < 2 or args.prompt < 1 or not args.batches or min(args.batches) < 1:
        ap.error("--new >= 2, --prompt >= 1 and batch sizes >= 1 expected")
    vocab = 0
    if modes:
        with open(f"{args.model}/config.json") as f:
            vocab = json.load(f)["vocab_size"]
    result = {"model": args.model, "device": args.device, "dtype": args.dtype, "torch": torch.__version__, "runs": []}
    if modes:
        import transformers
        result["transformers"] = transformers.__version__
    if args.device.startswith("cuda"):
        result["device_name"] = torch.cuda.get_device_name(0)
    if args.bandwidth:
        result["bandwidth_gbps"] = measure_bandwidth(args.device, gib=4.0 if args.device.startswith("cuda") else 0.25)
    write(result, args.json)
    for mode in modes:
        try:
            result["runs"] += run_mode(args, mode, vocab)
        except Exception as e:
            result["runs"].append({"mode": mode, "error": f"{type(e).__name__}: {e}"})
            traceback.print_exc()
        write(result, args.json)  # after every mode: a later timeout keeps what was measured
    print(json.dumps(result, indent=2))


def write(result, path):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
