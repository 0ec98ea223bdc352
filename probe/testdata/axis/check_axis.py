#!/usr/bin/python3
"""Independent numpy recomputation of a tether run's Assistant Axis.

Usage: check_axis.py RUN_DIR [--min-score 3] [--percentiles 1,25,50,75] > expected.json

Reads RUN/run.json, RUN/rollouts.jsonl and the activation shards (safetensors parsed by hand:
8-byte little-endian header length, JSON header, raw little-endian F32 data) and computes, with
numpy only:
  role vector    = mean of the role's kept rollouts (all when the run had no judge, else
                   score >= min-score); default vector = mean of all default rollouts (pooled)
  axis           = default vector - mean of the role vectors
  tau            = np.percentile (linear) of every rollout's projection on axis/|axis|
  (rollouts with an empty response are left out everywhere)
  PCA            = SVD of the mean-centred role vectors; PC1 oriented so the default projects high
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(info["shape"])
    return out, header.get("__metadata__", {})


def main():
    args = sys.argv[1:]
    run = args[0]
    min_score = 3
    percentiles = [1.0, 25.0, 50.0, 75.0]
    if "--min-score" in args:
        min_score = int(args[args.index("--min-score") + 1])
    if "--percentiles" in args:
        percentiles = [float(x) for x in args[args.index("--percentiles") + 1].split(",")]

    manifest = json.load(open(f"{run}/run.json"))
    judge = manifest["settings"].get("judge", "none")
    judged = judge not in ("", "none")
    rollouts = [json.loads(line) for line in open(f"{run}/rollouts.jsonl") if line.strip()]
    # A rollout with an empty response has no activation (its stored mean is zero): skip it.
    rollouts = [r for r in rollouts if r["response_tokens"] > 0]

    shards = {}
    acts = []
    for r in rollouts:
        if r["shard"] not in shards:
            tensors, meta = read_safetensors(f"{run}/{r['shard']}")
            ids = json.loads(meta["ids"])
            shards[r["shard"]] = (tensors["mean"], ids)
        mean, ids = shards[r["shard"]]
        assert ids[r["row"]] == r["id"], (r["id"], ids[r["row"]])
        acts.append(mean[r["row"]].astype(np.float64))
    acts = np.stack(acts)  # [n, L, H]

    def kept(r):
        if r["role"] == "default" or not judged:
            return True
        return r["score"] is not None and r["score"] >= min_score

    roles = sorted({r["role"] for r in rollouts if r["role"] != "default" and kept(r)})
    default_mean = acts[[i for i, r in enumerate(rollouts) if r["role"] == "default"]].mean(axis=0)
    role_means = np.stack([
        acts[[i for i, r in enumerate(rollouts) if r["role"] == role and kept(r)]].mean(axis=0)
        for role in roles
    ])  # [R, L, H]
    axis = default_mean - role_means.mean(axis=0)
    unit = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    projs = np.einsum("nlh,lh->nl", acts, unit)
    tau = np.stack([np.percentile(projs, p, axis=0) for p in percentiles])

    pc1s, cosines, explained = [], [], []
    for l in range(axis.shape[0]):
        x = role_means[:, l, :]
        centre = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - centre, full_matrices=False)
        pc1 = vt[0]
        if (default_mean[l] - centre) @ pc1 < 0:
            pc1 = -pc1
        pc1s.append(pc1.tolist())
        cosines.append(float(pc1 @ axis[l] / np.linalg.norm(axis[l])))
        explained.append((s ** 2 / (s ** 2).sum()).tolist())

    json.dump({
        "roles": roles,
        "percentiles": percentiles,
        "axis": axis.tolist(),
        "default_mean": default_mean.tolist(),
        "role_means": role_means.tolist(),
        "tau": tau.tolist(),
        "pc1": pc1s,
        "pc1_cosine": cosines,
        "variance_explained": explained,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
