"""check_safetensors.py FILE

Read the file `weipipe-data --write-safetensors-test` wrote with the Python
`safetensors` library (numpy and safe_open) and check every tensor, the
metadata, and the layout rules weipipe's writer promises: header keys sorted
(__metadata__ first), header padded with spaces to a multiple of 8, data in
name order without holes. Tensor t's value i is t + i/8 - 1, t the index in
weipipe-data's list (below, in that order).
"""
import json
import struct
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

SPECS = [("wte.weight", (5, 3)), ("h.0.attn.bias", (3,)), ("Upper.scalar", ()),
         ("empty", (0, 4)), ('n"q\\uo\u00e9te', (2, 1, 2))]

path = sys.argv[1]
tensors = load_file(path)
assert sorted(tensors) == sorted(n for n, _ in SPECS), sorted(tensors)
for t, (name, shape) in enumerate(SPECS):
    a = tensors[name]
    want = (t + np.arange(int(np.prod(shape)), dtype=np.float32) / 8 - 1).astype(np.float32).reshape(shape)
    assert a.dtype == np.float32 and a.shape == shape, (name, a.dtype, a.shape)
    assert np.array_equal(a, want), (name, a, want)
with safe_open(path, framework="numpy") as f:
    meta = f.metadata()
assert meta == {"weipipe.run": '{"a": 1}', "other": "x"}, meta

raw = open(path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
text = raw[8:8 + n].decode("utf-8")
assert (8 + n) % 8 == 0 and text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))), n
hdr = json.loads(text)
keys = list(hdr)
assert keys[0] == "__metadata__" and keys[1:] == sorted(keys[1:], key=lambda k: k.encode()), keys
ends = [hdr[k]["data_offsets"] for k in keys[1:]]
assert ends[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ends, ends[1:])), ends
assert 8 + n + ends[-1][1] == len(raw)
print(f"safetensors {len(tensors)} tensors, metadata {sorted(meta)}: values, names and layout OK")
