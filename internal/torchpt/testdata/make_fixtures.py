#!/usr/bin/env python3
"""Writes the torchpt reader's fixtures with PyTorch itself, and expected.json
with the values torch reports for them (independently of the Go reader).

Run from this directory:  /usr/bin/python3 make_fixtures.py   (Debian python3-torch)
The crafted bad files are written as bytes and never loaded here.
"""
import json
import zipfile
from collections import OrderedDict

import torch

torch.manual_seed(20260130)


def values(t):
    return [float(x) for x in t.detach().to(torch.float64).flatten().tolist()]


def describe(t):
    return {
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "storage_offset": t.storage_offset(),
        "stride": list(t.stride()),
        "contiguous": t.is_contiguous(),
        "values": values(t),
    }


expected = {}

# One file with every dtype, a strided view and plain Python metadata.
base = torch.randn(5, 6)
view = base[1:, ::2].t()  # offset 6, strides (2, 6), not contiguous
shared = base[2]  # shares base's storage
tensors = OrderedDict(
    f32=torch.randn(3, 4),
    bf16=torch.randn(2, 5).to(torch.bfloat16),
    f16=(torch.randn(4) * 100).to(torch.float16),
    view=view,
    shared=shared,
    base=base,
    scalar=torch.tensor(2.5),
)
meta = {"name": "fixture", "count": 3, "p": 0.25, "flags": [True, False, None], "pair": (1, "two"),
        "big": 2 ** 70, "neg": -7}
torch.save({"tensors": tensors, "meta": meta}, "tensors.pt")
expected["tensors.pt"] = {
    "tensors": {k: describe(v) for k, v in tensors.items()},
    "meta": {"name": "fixture", "count": 3, "p": 0.25, "neg": -7},
}

# A bare tensor, as the reference pipeline's 5_axis.py saves it.
raw = torch.randn(2, 3).to(torch.bfloat16)
torch.save(raw, "raw_tensor.pt")
expected["raw_tensor.pt"] = describe(raw)

with open("expected.json", "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")


def put(z, name, data):
    """Writes a stored record with a fixed date, so that reruns give the same bytes."""
    z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def rezip(src, dst, edit):
    """Copies a torch zip, letting edit(name, data) change or drop records."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                put(zout, info.filename, data)
        extra = edit("+", None)
        if extra:
            put(zout, extra[0], extra[1])


def torch_zip(dst, pkl):
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        put(z, "archive/data.pkl", pkl)
        put(z, "archive/version", "3\n")


with open("not_zip.pt", "wb") as f:
    f.write(b"this is a text file, not a torch.save archive\n")

with zipfile.ZipFile("no_data_pkl.pt", "w") as z:
    put(z, "archive/version", "3\n")

# os.system("true") via GLOBAL + REDUCE (protocol 2), and builtins.eval via
# STACK_GLOBAL (protocol 4). Never unpickled here.
torch_zip("forbidden_global.pt", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
torch_zip("forbidden_stack_global.pt",
          b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.")

# The storage of the first record cut in half.
def truncate(name, data):
    if name == "+" or data is None:
        return None
    if name.endswith("/data/0"):
        return data[: len(data) // 2]
    return data


rezip("tensors.pt", "truncated_storage.pt", truncate)


def big_endian(name, data):
    if name == "+":
        return ("tensors/byteorder", "big")
    return data


rezip("tensors.pt", "big_endian.pt", big_endian)
