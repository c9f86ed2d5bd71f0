"""compare_logs.py A.jsonl B.jsonl [--rtol R]: two runs over the same windows agree step by step.

Same step numbers, windows, tokens and lr; loss and grad_norm equal to rel R
(default 1e-5) at step 0 (identical weights) and 10*R later (weights that
went through different float summation orders).
"""
import argparse
import json
import sys

p = argparse.ArgumentParser()
p.add_argument("a")
p.add_argument("b")
p.add_argument("--rtol", type=float, default=1e-5)
a = p.parse_args()
ra = [json.loads(x) for x in open(a.a)]
rb = [json.loads(x) for x in open(a.b)]
bad = []
if len(ra) != len(rb):
    bad.append(f"{len(ra)} vs {len(rb)} steps")
for x, y in zip(ra, rb):
    s = x["step"]
    for k in ["step", "windows", "tokens", "lr"]:
        if x[k] != y[k]:
            bad.append(f"step {s}: {k} {x[k]} != {y[k]}")
    tol = a.rtol if s == 0 else 10 * a.rtol
    for k in ["loss", "grad_norm"]:
        if abs(x[k] - y[k]) > tol * abs(y[k]):
            bad.append(f"step {s}: {k} {x[k]} != {y[k]} (rel {abs(x[k] - y[k]) / abs(y[k]):.2g} > {tol:g})")
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
print(f"{len(ra)} steps agree: same windows, tokens, lr; loss and grad_norm within rel {a.rtol:g} "
      f"(step 0), {10 * a.rtol:g} (later)")
