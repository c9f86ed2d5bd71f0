"""Feeds weipipe-opt corrupted copies of a model and checks that every one is
either imported or rejected with an error and exit code 1: never a crash, a
hang, an assertion or another exit code.

Corruptions (seeded, so a failure reproduces): truncation at random offsets,
random byte overwrites in binary models, and random character edits in text
models. The first failing case is kept next to the output for inspection.
"""
import argparse
import random
import shutil
import subprocess
import sys


def mutations(data: bytes, text: bool, count: int, rng: random.Random):
    alphabet = b'(){}[]<>,=:;"#\n 0123456789abcxyz-.'
    for k in range(count):
        b = bytearray(data)
        kind = k % 3
        if kind == 0:
            yield "truncate", bytes(b[: rng.randrange(len(b))])
            continue
        for _ in range(rng.choice([1, 2, 8])):
            i = rng.randrange(len(b))
            if text:
                b[i] = rng.choice(alphabet)
            else:
                b[i] = rng.randrange(256)
        yield "overwrite", bytes(b)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--weipipe-opt", required=True)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", required=True, help="path for the corrupted copy")
    ap.add_argument("--opt-arg", action="append", default=[], help="extra weipipe-opt argument")
    a = ap.parse_args()
    data = open(a.model, "rb").read()
    text = a.model.endswith(".onnxtext")
    rng = random.Random(a.seed)
    outcomes = {"imported": 0, "rejected": 0}
    for k, (kind, blob) in enumerate(mutations(data, text, a.count, rng)):
        with open(a.work, "wb") as f:
            f.write(blob)
        try:
            r = subprocess.run([a.weipipe_opt, a.work, "-o", "/dev/null", *a.opt_arg],
                               capture_output=True, text=True, errors="replace", timeout=60)
        except subprocess.TimeoutExpired:
            shutil.copy(a.work, a.work + ".failed")
            print(f"case {k} ({kind}): hang (over 60 s); kept as {a.work}.failed")
            return 1
        crashed = (r.returncode not in (0, 1) or "Stack dump" in r.stderr
                   or "PLEASE submit a bug report" in r.stderr)
        rejected_silently = r.returncode == 1 and "error:" not in r.stderr
        if crashed or rejected_silently:
            shutil.copy(a.work, a.work + ".failed")
            print(f"case {k} ({kind}): exit {r.returncode}; kept as {a.work}.failed\n{r.stderr[-2000:]}")
            return 1
        outcomes["imported" if r.returncode == 0 else "rejected"] += 1
    print(f"{a.count} corrupted models: {outcomes['imported']} imported, "
          f"{outcomes['rejected']} rejected with an error, 0 crashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
