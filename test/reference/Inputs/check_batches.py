"""check_batches.py OUT.npz DATA --layout raw16|raw32|llmc16|llmc32|text --seq S --batch B
                    --microbatches M --steps N [--shuffle SEED]

Recompute the batches `python -m weipipe.reference batches` wrote, with a
plain numpy slice of the file: window i = tokens[i*(S+1):(i+1)*(S+1)], the
k-th window consumed (k = (step*M + m)*B + r) is window k % n (sequential) or
perm_e[k % n] with perm_e the e-th rng.permutation(n) of
numpy.random.default_rng(SEED), e = k // n (shuffle); inputs = window[:-1],
targets = window[1:].
"""
import argparse
import sys

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("npz")
p.add_argument("data")
p.add_argument("--layout", required=True, choices=["raw16", "raw32", "llmc16", "llmc32", "text"])
for k in ["--seq", "--batch", "--microbatches", "--steps"]:
    p.add_argument(k, type=int, required=True)
p.add_argument("--shuffle", type=int, default=None)
a = p.parse_args()

raw = open(a.data, "rb").read()
if a.layout == "text":
    tok = np.array(list(raw), dtype=np.int64)
else:
    off = 1024 if a.layout.startswith("llmc") else 0
    dt = "<u2" if a.layout.endswith("16") else "<u4"
    tok = np.frombuffer(raw[off:], dtype=dt).astype(np.int64)
S, B, M, N = a.seq, a.batch, a.microbatches, a.steps
n = len(tok) // (S + 1)
perms = []
if a.shuffle is not None:
    rng = np.random.default_rng(a.shuffle)
    total = N * M * B
    perms = [rng.permutation(n) for _ in range((total + n - 1) // n)]


def win_index(k):
    return k % n if a.shuffle is None else perms[k // n][k % n]


z = np.load(a.npz)
exp_w = np.array([[[win_index((s * M + m) * B + r) for r in range(B)] for m in range(M)] for s in range(N)], np.int64)
exp = np.stack([tok[w * (S + 1):(w + 1) * (S + 1)] for w in exp_w.reshape(-1)]).reshape(N, M, B, S + 1)
bad = []
for key, want in [("windows", exp_w), ("inputs", exp[..., :-1]), ("targets", exp[..., 1:])]:
    got = z[key]
    if got.shape != want.shape or got.dtype != np.int64 or not np.array_equal(got, want):
        bad.append(key)
if bad:
    sys.exit(f"FAIL: {', '.join(bad)} differ from the numpy slices")
wraps = (N * M * B) // n
print(f"{a.layout}: {len(tok)} tokens, {n} windows; {N} steps x {M} x {B} rows ({wraps} wrap-arounds) "
      f"equal the numpy slices")
if a.shuffle is not None:
    first = exp_w.reshape(-1)[:n]
    print("first epoch is a permutation:", sorted(first.tolist()) == list(range(n)))
