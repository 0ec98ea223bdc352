#!/usr/bin/env python3
"""Writes small files in the exact structure of the Assistant Axis reference
(github.com/safety-research/assistant-axis): axis.pt as save_axis() and as
pipeline/5_axis.py write it, capping_config.pt as build_capping_steerer()
reads it, and expected.json with the values torch reports and the reference's
own capping (ActivationSteering._apply_cap) applied to random activations.

Run from this directory:  /usr/bin/python3 make_fixtures.py [REFERENCE_CHECKOUT]
(default /work/ref; Debian python3-torch). Only steering.py of the reference
is imported; it needs nothing but torch.
"""
import importlib.util
import json
import sys

import torch

ref = sys.argv[1] if len(sys.argv) > 1 else "/work/ref"
spec = importlib.util.spec_from_file_location("steering", ref + "/assistant_axis/steering.py")
steering = importlib.util.module_from_spec(spec)
spec.loader.exec_module(steering)

torch.manual_seed(46)
LAYERS, HIDDEN, TOKENS = 4, 8, 6


def values(t):
    return [float(x) for x in t.detach().to(torch.float64).flatten().tolist()]


expected = {"layers": LAYERS, "hidden": HIDDEN}

# save_axis(axis, path, metadata): {"axis": [layers, hidden], "metadata": {...}}
axis = torch.randn(LAYERS, HIDDEN) * 3
torch.save({"axis": axis, "metadata": {"model": "tiny/test-model", "n_roles": 5}}, "axis.pt")
expected["axis.pt"] = {"axis": values(axis), "model": "tiny/test-model"}

# pipeline/5_axis.py: torch.save(axis) of the bare bf16 tensor.
axis_bf16 = (torch.randn(LAYERS, HIDDEN) * 2).to(torch.bfloat16)
torch.save(axis_bf16, "axis_raw_bf16.pt")
expected["axis_raw_bf16.pt"] = {"axis": values(axis_bf16)}

# Wrong structures.
torch.save({"vectors": axis}, "axis_missing.pt")
torch.save({"axis": axis[0]}, "axis_rank1.pt")

# capping_config.pt: vectors {name: {layer, vector}}, experiments [{id, interventions: [{vector, cap}]}].
# Vector norms differ from 1 on purpose; one is float16, one bfloat16.
vectors = {}
for layer in range(LAYERS):
    v = torch.randn(HIDDEN) * (0.5 + layer)
    if layer == 2:
        v = v.to(torch.float16)
    if layer == 3:
        v = v.to(torch.bfloat16)
    vectors[f"layer_{layer}"] = {"layer": layer, "vector": v}
acts = torch.randn(LAYERS, 1, TOKENS, HIDDEN) * 4


def cap_at(name, q):
    """A cap at quantile q of the activations' projections on the unit vector."""
    v = vectors[name]["vector"].float()
    p = acts[vectors[name]["layer"], 0] @ (v / v.norm())
    return float(torch.quantile(p, q))


experiments = [
    {"id": "layers_1:3-p0.25", "interventions": [
        {"vector": "layer_1", "cap": cap_at("layer_1", 0.25)},
        {"vector": "layer_2", "cap": cap_at("layer_2", 0.25)},
    ]},
    {"id": "layers_0:4-p0.5", "interventions": [
        {"vector": "layer_0", "cap": cap_at("layer_0", 0.5)},
        {"vector": "layer_1", "cap": cap_at("layer_1", 0.5)},
        {"vector": "layer_3", "cap": cap_at("layer_3", 0.5)},
        {"vector": "layer_2"},  # no cap: build_capping_steerer skips it
    ]},
]
torch.save({"vectors": vectors, "experiments": experiments}, "capping_config.pt")

# The reference's own capping, per experiment and layer, on the same activations.
steerer = object.__new__(steering.ActivationSteering)
steerer.positions = "all"
capped = {}
for exp in experiments:
    out = acts.clone()
    for iv in exp["interventions"]:
        if "cap" not in iv:
            continue
        vec = vectors[iv["vector"]]
        layer = vec["layer"]
        out[layer] = steerer._apply_cap(out[layer], vec["vector"].to(torch.float32), float(iv["cap"]))
    capped[exp["id"]] = values(out)
expected["capping_config.pt"] = {
    "vectors": {k: {"layer": v["layer"], "vector": values(v["vector"])} for k, v in vectors.items()},
    "experiments": [{"id": e["id"], "caps": [iv.get("cap") for iv in e["interventions"]]} for e in experiments],
    "activations": values(acts),
    "tokens": TOKENS,
    "capped": capped,
}

# A config whose experiment names a vector it does not have.
torch.save({"vectors": {"layer_0": vectors["layer_0"]},
            "experiments": [{"id": "broken", "interventions": [{"vector": "layer_9", "cap": 1.0}]}]},
           "capping_config_bad.pt")

# For the command-line tests' tiny model (hidden 64, 6 layers): "floor10"
# caps at -10 on layers 1..3 (acts on every token), "open" at 1e30 (never);
# "floor10_tensor" is floor10 with its caps as 0-d tensors (float() takes them).
g = torch.Generator().manual_seed(64)
vectors64 = {f"layer_{l}": {"layer": l, "vector": torch.randn(64, generator=g) * 3} for l in (1, 2, 3)}
torch.save({"vectors": vectors64, "experiments": [
    {"id": "floor10", "interventions": [{"vector": f"layer_{l}", "cap": -10.0} for l in (1, 2, 3)]},
    {"id": "open", "interventions": [{"vector": f"layer_{l}", "cap": 1e30} for l in (1, 2, 3)]},
    {"id": "floor10_tensor", "interventions": [{"vector": f"layer_{l}", "cap": torch.tensor(-10.0)} for l in (1, 2, 3)]},
]}, "capping_config_h64.pt")

with open("expected.json", "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")
