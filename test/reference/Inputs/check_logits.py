"""check_logits.py GOT.npy REF.npy [--rtol R]: max|got-ref| / max|ref| <= R (default 1e-5)."""
import argparse
import sys

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("got")
p.add_argument("ref")
p.add_argument("--rtol", type=float, default=1e-5)
a = p.parse_args()
g, r = np.load(a.got), np.load(a.ref)
if g.shape != r.shape:
    sys.exit(f"FAIL: shapes {g.shape} != {r.shape}")
if not (np.all(np.isfinite(g)) and np.all(np.isfinite(r))):
    sys.exit("FAIL: non-finite logits")
err = float(np.max(np.abs(g.astype(np.float64) - r))) / max(float(np.max(np.abs(r))), 1e-30)
if err > a.rtol:
    sys.exit(f"FAIL: logits {list(g.shape)} max rel err {err:.3g} > {a.rtol:g}")
print(f"logits {list(g.shape)} match: max rel err <= {a.rtol:g} ({err:.2e})")
