#!/usr/bin/env python3
"""Summarise a scripts/device-check.sh run: summary.json and summary.md.

Reads the step table (steps.tsv), the logs and the JSON results in LOGS and writes
OUT/summary.json and OUT/summary.md: each step's status, the device report, test
counts and failures, tether's bench perf numbers, transformers' numbers and the
tether / transformers ratios, the persona pipeline's timing. Standard library
only; every section is read on its own, so a missing or broken result leaves the
others intact (its error is reported in place).

Usage: python3 scripts/device_summary.py --logs DIR --out DIR
"""

import argparse
import glob
import json
import os
import re


def read_json(path):
    with open(path) as f:
        return json.load(f)


def steps(logs):
    out = []
    with open(os.path.join(logs, "steps.tsv")) as f:
        for line in f:
            name, rc, ms, budget = line.rstrip("\n").split("\t")
            rc = int(rc)
            status = {0: "ok", 124: "over budget", 137: "over budget", 125: "skipped (no time left)"}.get(rc, f"failed (rc {rc})")
            out.append({"step": name, "rc": rc, "status": status, "seconds": int(ms) / 1000, "budget_s": int(budget)})
    return out


def tests(logs):
    out = {}
    for path in sorted(glob.glob(os.path.join(logs, "test_*.log")) + [os.path.join(logs, "hf_fixtures.log")]):
        if not os.path.exists(path):
            continue
        name = os.path.basename(path)[:-4]
        text = open(path, errors="replace").read()
        counts = {k: len(re.findall(rf"^\s*--- {k}: ", text, re.M)) for k in ("PASS", "FAIL", "SKIP")}
        failed = re.findall(r"^\s*--- FAIL: (\S+)", text, re.M)
        out[name] = dict(counts, failed=failed, timed_out="panic: test timed out" in text,
                         tail=text.strip().splitlines()[-8:])
    return out


def bench(logs):
    out = {}
    for path in sorted(glob.glob(os.path.join(logs, "bench_*.json"))):
        name = os.path.basename(path)[len("bench_"):-len(".json")]
        try:
            out[name] = read_json(path)
        except (OSError, ValueError) as e:
            out[name] = {"error": str(e)}
    return out


def ratios(bench_results, hf):
    """tether decode tok/s over transformers' for every (model, mode, batch) both measured."""
    out = []
    tether = bench_results.get("llama-1b", {}).get("decode_tps_by_batch", {})
    for run in hf.get("runs", []):
        if "decode_tps" not in run:
            continue
        t = tether.get(str(run["batch"]))
        if t:
            out.append({"model": "llama-1b", "mode": run["mode"], "batch": run["batch"], "tether_decode_tps": t,
                        "transformers_decode_tps": run["decode_tps"], "ratio": t / run["decode_tps"]})
    return out


def goals(bench_results, ratio_rows):
    """The issue's goals, each with the measured value and whether it was met."""
    out = []
    for name in ("llama-1b", "qwen-1.5b"):
        r = bench_results.get(name, {})
        if "decode_batch1_over_floor" in r:
            v = r["decode_batch1_over_floor"]
            out.append({"goal": f"{name}: decode batch 1 >= 0.6 of the bandwidth floor", "value": round(v, 3), "met": v >= 0.6})
    for name, r in bench_results.items():
        if isinstance(r, dict) and "compilations_after_warmup" in r:
            v = r["compilations_after_warmup"]
            out.append({"goal": f"{name}: no compilation after warm-up", "value": v, "met": v == 0})
    for r in ratio_rows:
        out.append({"goal": f"faster than transformers {r['mode']} at batch {r['batch']}", "value": round(r["ratio"], 3), "met": r["ratio"] > 1})
    return out


def section(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # one broken result must not hide the rest
        return {"error": f"{type(e).__name__}: {e}"}


def markdown(s):
    lines = ["# Device check", ""]
    info = s.get("info", {})
    if isinstance(info, dict) and "backend" in info:
        b = info["backend"]
        lines += [f"Backend report: `{b.get('report', '')}`", ""]
    lines += ["| step | status | seconds | budget |", "|---|---|---|---|"]
    for st in s.get("steps", []) if isinstance(s.get("steps"), list) else []:
        lines.append(f"| {st['step']} | {st['status']} | {st['seconds']:.1f} | {st['budget_s']} |")
    lines += ["", "## Tests", "", "| log | pass | fail | skip | failed tests |", "|---|---|---|---|---|"]
    for name, t in (s.get("tests") or {}).items():
        if isinstance(t, dict) and "PASS" in t:
            failed = ", ".join(t["failed"][:8]) + (" (timed out)" if t["timed_out"] else "")
            lines.append(f"| {name} | {t['PASS']} | {t['FAIL']} | {t['SKIP']} | {failed} |")
    lines += ["", "## tether bench perf", "",
              "| run | prefill tok/s (prompt) | decode tok/s by batch | bandwidth GB/s | floor tok/s | batch 1 / floor | compiles (after warm-up) |",
              "|---|---|---|---|---|---|---|"]
    for name, r in (s.get("bench") or {}).items():
        if not isinstance(r, dict) or "error" in r:
            r = r if isinstance(r, dict) else {"error": r}
            lines.append(f"| {name} | error: {r['error']} | | | | | |")
            continue
        dec = ", ".join(f"{b}: {v:.1f}" for b, v in sorted(r.get("decode_tps_by_batch", {}).items(), key=lambda kv: int(kv[0])))
        lines.append(f"| {name} | {r.get('prefill_tps', 0):.1f} ({r.get('prefill_tokens')}) | {dec} | {r.get('bandwidth_gbps', 0):.0f} ({r.get('bandwidth_source')}) "
                     f"| {r.get('floor_decode_tps', 0):.1f} | {r.get('decode_batch1_over_floor', 0):.2f} | {r.get('compilations')} ({r.get('compilations_after_warmup')}) |")
    hf = s.get("transformers") or {}
    lines += ["", "## transformers", ""]
    if "runs" in hf:
        lines += [f"transformers {hf.get('transformers')}, torch {hf.get('torch')}, {hf.get('device_name', hf.get('device'))}, {hf.get('dtype')}", "",
                  "| mode | batch | decode tok/s | prefill tok/s | warm-up s | error |", "|---|---|---|---|---|---|"]
        for r in hf["runs"]:
            lines.append(f"| {r.get('mode')} | {r.get('batch', '')} | {r.get('decode_tps', 0):.1f} | {r.get('prefill_tps', 0):.1f} | {r.get('warmup_s', 0):.1f} | {r.get('error', '')} |")
    else:
        lines.append(f"no result: {hf.get('error', 'missing')}")
    lines += ["", "## tether / transformers (decode tok/s, llama-1b)", "", "| mode | batch | tether | transformers | ratio |", "|---|---|---|---|---|"]
    for r in s.get("ratios") or []:
        if isinstance(r, dict) and "ratio" in r:
            lines.append(f"| {r['mode']} | {r['batch']} | {r['tether_decode_tps']:.1f} | {r['transformers_decode_tps']:.1f} | {r['ratio']:.2f} |")
    lines += ["", "## Goals", "", "| goal | value | met |", "|---|---|---|"]
    for g in s.get("goals") or []:
        if isinstance(g, dict) and "goal" in g:
            lines.append(f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |")
    p = s.get("persona") or {}
    lines += ["", "## persona run and capped generation", "", "```", *p.get("tail", [str(p.get("error", ""))]), "```", ""]
    return "\n".join(lines) + "\n"


def persona(logs):
    text = open(os.path.join(logs, "persona.log"), errors="replace").read()
    out = {"tail": text.strip().splitlines()[-15:]}
    if os.path.exists(os.path.join(logs, "capped.json")):
        out["capped"] = read_json(os.path.join(logs, "capped.json"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    s = {"steps": section(steps, args.logs),
         "info": section(read_json, os.path.join(args.logs, "info.log")),
         "tests": section(tests, args.logs),
         "bench": section(bench, args.logs),
         "transformers": section(read_json, os.path.join(args.logs, "hf_compare.json")),
         "bandwidth": section(read_json, os.path.join(args.logs, "bandwidth.json")),
         "persona": section(persona, args.logs)}
    bench_ok = s["bench"] if "error" not in s["bench"] else {}
    s["ratios"] = section(ratios, bench_ok, s["transformers"])
    s["goals"] = section(goals, bench_ok, s["ratios"] if isinstance(s["ratios"], list) else [])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(markdown(s))


if __name__ == "__main__":
    main()
