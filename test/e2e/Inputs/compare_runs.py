"""Compare a weipipe-run training run with the PyTorch reference's.

  compare_runs.py --ours-log A.jsonl --ref-log B.jsonl [--ours-weights A.st --ref-weights B.st]
                  [--rtol 1e-5]

Losses and gradient norms: every step of both logs, |ours - ref| / |ref| <= rtol (same number of
steps). Weights: the two safetensors files hold the same names, shapes and
dtypes, and for each tensor the relative error ||ours - ref||_2 / ||ref||_2
<= rtol (the norm-wise relative error: it does not blow up on the elements of
a zero-initialized bias, whose values after one step are the update itself).
The largest elementwise error relative to max|ref| is printed as well. Prints one
summary line per check; exits 1 on the first mismatch, naming it.
"""
import argparse
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def losses(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(int(r["step"]), float(r["loss"]), float(r["grad_norm"])) for r in rows]


p = argparse.ArgumentParser()
p.add_argument("--ours-log", required=True)
p.add_argument("--ref-log", required=True)
p.add_argument("--ours-weights")
p.add_argument("--ref-weights")
p.add_argument("--rtol", type=float, default=1e-5)
a = p.parse_args()

ours, ref = losses(a.ours_log), losses(a.ref_log)
if len(ours) != len(ref) or not ours:
    fail(f"{len(ours)} logged steps vs the reference's {len(ref)}")
worst = 0.0
for (so, lo, go), (sr, lr, gr) in zip(ours, ref):
    if so != sr:
        fail(f"step numbers differ: {so} vs {sr}")
    for what, x, y in (("loss", lo, lr), ("grad_norm", go, gr)):
        err = abs(x - y) / max(abs(y), 1e-30)
        worst = max(worst, err)
        if not np.isfinite(x) or err > a.rtol:
            fail(f"step {so}: {what} {x!r} vs reference {y!r} (rel err {err:.3g} > {a.rtol:g})")
print(f"losses and gradient norms of {len(ours)} steps match (first {ours[0][1]:.6f}, last {ours[-1][1]:.6f}): "
      f"max rel err <= {a.rtol:g} ({worst:.2e})")

if a.ours_weights:
    wo, wr = load_file(a.ours_weights), load_file(a.ref_weights)
    if sorted(wo) != sorted(wr):
        fail(f"weight names differ: only ours {sorted(set(wo) - set(wr))}, "
             f"only reference {sorted(set(wr) - set(wo))}")
    worst, worst_name, worst_elem = 0.0, "", 0.0
    for name in sorted(wr):
        o, r = wo[name], wr[name]
        if o.shape != r.shape or o.dtype != r.dtype:
            fail(f"'{name}': {o.dtype}{list(o.shape)} vs reference {r.dtype}{list(r.shape)}")
        d = o.astype(np.float64) - r
        err = float(np.linalg.norm(d)) / max(float(np.linalg.norm(r.astype(np.float64))), 1e-30)
        elem = float(np.max(np.abs(d))) / max(float(np.max(np.abs(r))), 1e-30) if d.size else 0.0
        worst_elem = max(worst_elem, elem)
        if not np.all(np.isfinite(o)) or err > a.rtol:
            fail(f"'{name}' {list(r.shape)}: rel err {err:.3g} > {a.rtol:g}")
        if err >= worst:
            worst, worst_name = err, name
    print(f"{len(wr)} weight tensors match: rel err <= {a.rtol:g} ({worst:.2e}, '{worst_name}'; "
          f"largest elementwise {worst_elem:.2e})")
