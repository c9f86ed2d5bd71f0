"""compare_batches.py CPP.json REF.npz

Compare weipipe-data's JSON (the C++ data path of weipipe-run) with the
reference trainer's `batches` .npz: windows [N, M, B], inputs and targets
[N, M, B, S] must be identical.
"""
import json
import sys

import numpy as np

cpp = json.load(open(sys.argv[1]))
ref = np.load(sys.argv[2])
bad = []
for key in ("windows", "inputs", "targets"):
    got = np.array(cpp[key], dtype=np.int64)
    want = ref[key]
    if got.size == 0 and want.size == 0:
        continue
    if got.shape != want.shape or not np.array_equal(got, want):
        bad.append(f"{key} (C++ {got.shape} vs reference {want.shape})")
if bad:
    sys.exit("FAIL: " + ", ".join(bad) + " differ")
N, M, B = ref["windows"].shape
print(f"{cpp['describe']}; {cpp['n']} windows; {N} steps x {M} x {B} rows equal the reference's")
