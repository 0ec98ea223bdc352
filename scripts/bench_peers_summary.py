#!/usr/bin/env python3
"""Summarise a scripts/bench-peers.sh run as a Markdown table.

Reads DIR/tether-f32.jsonl, tether-bf16.jsonl (tether bench perf --json, one line per round,
with a "round" key) and llama-f32.jsonl, llama-f16.jsonl (llama-bench -o jsonl, one line per
test per round) and prints each figure's median over the rounds with its range, and the ratios
of the two engines computed within each round (same machine state), as median and range.
Standard library only.

Usage: python3 scripts/bench_peers_summary.py DIR
"""

import json
import os
import statistics
import sys


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def by_round(rows, key):
    out = {}
    for row in rows:
        v = key(row)
        if v is not None:
            out[row["round"]] = v
    return out


def llama(rows, n_prompt, n_gen):
    return by_round(rows, lambda r: r["avg_ts"] if r["n_prompt"] == n_prompt and r["n_gen"] == n_gen else None)


def tether(rows, kind, n):
    def get(r):
        m = r["decode_tps_by_batch" if kind == "decode" else "prefill_tps_by_tokens"]
        return m.get(str(n))
    return by_round(rows, get)


def fmt(vals):
    if not vals:
        return "n/a"
    v = sorted(vals)
    num = lambda x: "%.0f" % x if abs(x) >= 100 else "%.3g" % x
    return "%s (%s-%s)" % (num(statistics.median(v)), num(v[0]), num(v[-1]))


def ratio(a, b):
    return [a[k] / b[k] for k in a if k in b and b[k] > 0]


def main():
    d = sys.argv[1]
    t32, t16 = lines(os.path.join(d, "tether-f32.jsonl")), lines(os.path.join(d, "tether-bf16.jsonl"))
    l32, l16 = lines(os.path.join(d, "llama-f32.jsonl")), lines(os.path.join(d, "llama-f16.jsonl"))
    rounds = len({r["round"] for r in t32 + t16 + l32 + l16})
    bw = [r["bandwidth_gbps"] for r in t32 + t16]
    print("rounds: %d; bandwidth (vector reader, GB/s, every tether run): %s" % (rounds, fmt(bw)))
    print()
    print("| measure | tether | llama.cpp | tether / llama.cpp (same round) |")
    print("|---|---|---|---|")
    rows = [
        ("decode batch 1, f32 vs F32", tether(t32, "decode", 1), llama(l32, 0, 64)),
        ("decode batch 1, bf16 vs F16", tether(t16, "decode", 1), llama(l16, 0, 64)),
        ("prefill 128, f32 vs F32", tether(t32, "prefill", 128), llama(l32, 128, 0)),
        ("prefill 512, f32 vs F32", tether(t32, "prefill", 512), llama(l32, 512, 0)),
        ("prefill 128, bf16 vs F16", tether(t16, "prefill", 128), llama(l16, 128, 0)),
        ("prefill 512, bf16 vs F16", tether(t16, "prefill", 512), llama(l16, 512, 0)),
    ]
    for name, t, l in rows:
        print("| %s | %s | %s | %s |" % (name, fmt(list(t.values())), fmt(list(l.values())), fmt(ratio(t, l))))
    print()
    print("| tether | f32 | bf16 |")
    print("|---|---|---|")
    for b in (1, 8, 32):
        print("| decode batch %d, tok/s | %s | %s |" % (b, fmt(list(tether(t32, "decode", b).values())), fmt(list(tether(t16, "decode", b).values()))))
        f = lambda rows: [r["decode_over_floor_by_batch"][str(b)] for r in rows]
        print("| decode batch %d / floor | %s | %s |" % (b, fmt(f(t32)), fmt(f(t16))))
    for n in (128, 512):
        f = lambda rows: [r["prefill_over_floor_by_tokens"][str(n)] for r in rows]
        print("| prefill %d / floor | %s | %s |" % (n, fmt(f(t32)), fmt(f(t16))))
    print("| floor (bandwidth / weight bytes), tok/s | %s | %s |" % (fmt([r["floor_decode_tps"] for r in t32]), fmt([r["floor_decode_tps"] for r in t16])))
    print("| weight bytes | %d | %d |" % (t32[0]["weight_bytes"], t16[0]["weight_bytes"]))
    print("| peak RSS, MiB | %s | %s |" % (fmt([r["peak_rss_bytes"] / 2**20 for r in t32]), fmt([r["peak_rss_bytes"] / 2**20 for r in t16])))
    caps = [r["capped_over_uncapped"] for r in t32 if r.get("capped_over_uncapped")]
    print()
    print("capped (8 layers) / uncapped decode, f32, median of back-to-back pairs per round: %s" % fmt(caps))
    pc = os.path.join(d, "page-cache.txt")
    if os.path.exists(pc):
        print()
        print("page cache before the rounds (scripts/page_cache.py):")
        print()
        with open(pc) as f:
            for line in f:
                print("- " + line.strip())


if __name__ == "__main__":
    main()
