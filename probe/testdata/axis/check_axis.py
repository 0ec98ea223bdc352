#!/usr/bin/python3
"""Recompute a tether run's Assistant Axis with the reference project's own functions.

Usage: check_axis.py RUN_DIR TOKENS.safetensors --ref REF_DIR > expected.json

REF_DIR is a checkout of github.com/safety-research/assistant-axis (MIT). Its functions are
imported from their files and run on tether's stored activations (torch, float64):

  role vector    pipeline/4_vectors.py compute_pos_3_vector(activations, scores, min_count): the
                 mean of a role's score-3 rollouts, a ValueError (the role is left out) below
                 min_count; the case's min_score stands for the 3 by relabelling scores >= min_score
                 as 3 and the others as 0. Without a judge every rollout counts (scores all 3).
  default vector pipeline/4_vectors.py compute_mean_vector: the mean of ALL default rollouts.
  axis           assistant_axis/axis.py compute_axis(stack(role vectors), stack(default vectors)),
                 which is what pipeline/5_axis.py computes: mean(default) - mean(role vectors).
  PCA            assistant_axis/pca.py compute_pca fits sklearn's PCA (which cannot be imported
                 here): redone in numpy as sklearn >= 1.5 does it, SVD of the mean-centred role
                 vectors with each component's largest-magnitude entry made positive (svd_flip on
                 V). tether then flips PC1 when the default projects below the centroid
                 ("pc1_flipped").
  tau            the reference ships thresholds without the code that made them: numpy's linear
                 percentile of the projections on axis/|axis| of the case's calibration set
                 (default | roles | all) in its unit (rollout span means | tokens).
  cap fraction   assistant_axis/steering.py ActivationSteering._apply_cap, the reference's
                 capping function, run on every calibration token with its ceiling form
                 (vector -axis, threshold -tau, the same map as tether's floor): the fraction of
                 tokens it changes.

Rollouts with an empty response are left out everywhere (tether stores a zero mean for them).
TOKENS.safetensors holds, per non-empty rollout, token activations whose mean is its span mean
(written by probe's TestWriteAxisTokensFixture), standing in for a re-run of the model.
"""
import importlib.util
import json
import struct
import sys
import types

import numpy as np
import torch

PERCENTILES = [1.0, 25.0, 50.0, 75.0]

# (name, min_score, min_role_rollouts, calibrate_on, calibrate_unit)
CASES = [
    ("all-rollout", 3, 1, "all", "rollout"),
    ("reference-filter-default-rollout", 2, 3, "default", "rollout"),
    ("reference-filter-roles-token", 2, 3, "roles", "token"),
    ("default-token", 3, 1, "default", "token"),
    ("min6-all-token", 0, 6, "all", "token"),
    ("roles-rollout", 3, 1, "roles", "rollout"),
]


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def sklearn_pca(x):
    """sklearn.decomposition.PCA().fit on x: components (sign per svd_flip on V), explained."""
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    vt = vt * signs[:, None]
    return vt, s ** 2 / (s ** 2).sum(), x.mean(axis=0)


def main():
    args = sys.argv[1:]
    run, tokens_path = args[0], args[1]
    ref = args[args.index("--ref") + 1]
    sys.modules.setdefault("tqdm", types.SimpleNamespace(tqdm=lambda x, **k: x))
    vectors = load(f"{ref}/pipeline/4_vectors.py", "ref_vectors")
    ref_axis = load(f"{ref}/assistant_axis/axis.py", "ref_axis")
    steering = load(f"{ref}/assistant_axis/steering.py", "ref_steering")
    capper = types.SimpleNamespace(positions="all")

    manifest = json.load(open(f"{run}/run.json"))
    judged = manifest["settings"].get("judge", "none") not in ("", "none")
    rollouts = [json.loads(line) for line in open(f"{run}/rollouts.jsonl") if line.strip()]
    rollouts = [r for r in rollouts if r["response_tokens"] > 0]
    shards, acts = {}, {}
    for r in rollouts:
        if r["shard"] not in shards:
            tensors, meta = read_safetensors(f"{run}/{r['shard']}")
            shards[r["shard"]] = (tensors["mean"], json.loads(meta["ids"]))
        mean, ids = shards[r["shard"]]
        assert ids[r["row"]] == r["id"], (r["id"], ids[r["row"]])
        acts[r["id"]] = torch.tensor(mean[r["row"]].astype(np.float64))
    tok_t, tok_meta = read_safetensors(tokens_path)
    tokens = {i: tok_t["tokens"][k].astype(np.float64) for k, i in enumerate(json.loads(tok_meta["ids"]))}

    out = {"cases": []}
    for name, min_score, min_count, cal_on, cal_unit in CASES:
        by_role = {}
        for r in rollouts:
            by_role.setdefault(r["role"], []).append(r)
        default = {r["id"]: acts[r["id"]] for r in by_role.pop("default")}
        default_vec = vectors.compute_mean_vector(default)
        roles, role_vecs, dropped = [], [], {}
        for role in sorted(by_role):
            rs = by_role[role]
            scores = {r["id"]: 3 if (not judged or (r["score"] is not None and r["score"] >= min_score)) else 0 for r in rs}
            try:
                role_vecs.append(vectors.compute_pos_3_vector({r["id"]: acts[r["id"]] for r in rs}, scores, min_count))
                roles.append(role)
            except ValueError:
                dropped[role] = sum(1 for v in scores.values() if v == 3)
        kept_ids = {r["id"] for role in roles for r in by_role[role]
                    if not judged or (r["score"] is not None and r["score"] >= min_score)}
        axis = ref_axis.compute_axis(torch.stack(role_vecs), torch.stack([default_vec])).numpy()
        role_means = torch.stack(role_vecs).numpy()
        unit = axis / np.linalg.norm(axis, axis=1, keepdims=True)

        cal = [r for r in rollouts if {"default": r["role"] == "default", "roles": r["id"] in kept_ids, "all": True}[cal_on]]
        if cal_unit == "rollout":
            projs = np.stack([np.einsum("lh,lh->l", acts[r["id"]].numpy(), unit) for r in cal])
        else:
            projs = np.concatenate([np.einsum("tlh,lh->tl", tokens[r["id"]], unit) for r in cal])
        tau = np.stack([np.percentile(projs, p, axis=0) for p in PERCENTILES])  # [P, L]
        cal_tokens = np.concatenate([tokens[r["id"]] for r in cal])  # [T, L, H]
        fractions = []
        for i in range(len(PERCENTILES)):
            row = []
            for l in range(axis.shape[0]):
                h = torch.tensor(cal_tokens[None, :, l, :])
                # tether stores tau as float32; the reference's cap runs at that threshold.
                t32 = float(np.float32(tau[i, l]))
                capped = steering.ActivationSteering._apply_cap(capper, h, torch.tensor(-axis[l]), -t32)
                row.append(float((capped != h).any(dim=-1).double().mean()))
            fractions.append(row)

        pc1s, flipped, cosines, explained = [], [], [], []
        for l in range(axis.shape[0]):
            vt, ratio, centre = sklearn_pca(role_means[:, l, :])
            pc1 = vt[0]
            flip = bool((default_vec.numpy()[l] - centre) @ pc1 < 0)
            oriented = -pc1 if flip else pc1
            pc1s.append(pc1.tolist())
            flipped.append(flip)
            cosines.append(float(oriented @ axis[l] / np.linalg.norm(axis[l])) if ratio[0] > 0 else 0.0)
            explained.append(ratio.tolist())
        out["cases"].append({
            "name": name, "min_score": min_score, "min_role_rollouts": min_count,
            "calibrate_on": cal_on, "calibrate_unit": cal_unit,
            "roles": roles, "dropped": dropped, "percentiles": PERCENTILES,
            "axis": axis.tolist(), "default_mean": default_vec.numpy().tolist(),
            "role_means": role_means.tolist(), "calibration_rollouts": len(cal),
            "tau": tau.tolist(), "cap_token_fraction": fractions,
            "sklearn_pc1": pc1s, "pc1_flipped": flipped, "pc1_cosine": cosines,
            "variance_explained": explained,
        })
    # The first case, tether's former fixed choice, also at the top level (cmd/tether's test).
    first = out["cases"][0]
    out.update({k: first[k] for k in ("roles", "percentiles", "axis", "tau")})
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
