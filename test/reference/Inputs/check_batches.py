"""check_batches.py OUT.npz DATA --layout raw16|raw32|llmc16|llmc32|text --seq S --batch B
                    --microbatches M --steps N [--shuffle SEED]

Recompute the batches `python -m weipipe.reference batches` wrote, with a
plain numpy slice of the file: window i = tokens[i*(S+1):(i+1)*(S+1)], the
k-th window consumed (k = (step*M + m)*B + r) is window k % n (sequential) or
perm_e[k % n], e = k // n (shuffle), with perm_e the e-th Fisher-Yates shuffle
(i = n-1 down to 1: j = next() % (i+1), swap) drawn from one SplitMix64 seeded
with SEED (re-derived here with numpy uint64 arithmetic, and checked against
SplitMix64's published first outputs); inputs = window[:-1], targets =
window[1:].
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


class SplitMix64:
    """numpy uint64 arithmetic wraps mod 2**64 by itself."""

    def __init__(self, seed):
        self.s = np.uint64(seed % 2**64)

    def next(self):
        with np.errstate(over="ignore"):
            self.s = self.s + np.uint64(0x9E3779B97F4A7C15)
            z = self.s
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return int(z ^ (z >> np.uint64(31)))


# Vigna's splitmix64.c from seed 0, so that a shared mistake cannot pass.
_g = SplitMix64(0)
assert [_g.next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]

perms = []
if a.shuffle is not None:
    rng = SplitMix64(a.shuffle)
    total = N * M * B
    for _ in range((total + n - 1) // n):
        perm = np.arange(n, dtype=np.int64)
        for i in range(n - 1, 0, -1):
            j = rng.next() % (i + 1)
            perm[[i, j]] = perm[[j, i]]
        perms.append(perm)


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
