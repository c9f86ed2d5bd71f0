"""Write test data files for the reference-trainer tests.

  make_data.py tokens OUT --vocab V --count N [--dtype uint16|uint32] [--llmc VERSION] [--seed S] [--random] [--low L]
                [--poke POS=VALUE]... [--header-count N]
  make_data.py text OUT            (English prose from the standard library, a few KB)

Tokens follow a fixed random bigram chain (token i+1 = perm[token i], with a
random token every 8th position), learnable in a few steps; --random gives
uniform random ids.
"""
import argparse
import codecs
import contextlib
import io
import sys

import numpy as np


def tokens(a):
    rng = np.random.default_rng(a.seed)
    # --low L: ids in [L, vocab) (a chain over vocab - L ids, shifted by L),
    # e.g. to keep a padding id out of the data.
    vocab, a.vocab = a.vocab, a.vocab - a.low
    if a.random:
        t = rng.integers(0, a.vocab, a.count)
    else:
        perm = rng.permutation(a.vocab)
        t = np.empty(a.count, np.int64)
        t[0] = 0
        noise = rng.integers(0, a.vocab, a.count)
        for i in range(1, a.count):
            t[i] = noise[i] if i % 8 == 0 else perm[t[i - 1]]
    t = t + a.low
    a.vocab = vocab
    for poke in a.poke:
        pos, val = (int(x) for x in poke.split("="))
        t[pos] = val
    dt = np.dtype("<u2" if a.dtype == "uint16" else "<u4")
    body = t.astype(dt).tobytes()
    with open(a.out, "wb") as f:
        if a.llmc is not None:
            hdr = np.zeros(256, "<i4")
            hdr[0], hdr[1], hdr[2] = 20240520, a.llmc, a.count if a.header_count is None else a.header_count
            f.write(hdr.tobytes())
        f.write(body)


def text(a):
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # noqa: F401  (prints the Zen of Python)
    import json
    import textwrap
    zen = codecs.decode(this.s, "rot13")
    parts = [zen, textwrap.__doc__ or "", json.__doc__ or "", codecs.__doc__ or "", argparse.__doc__ or ""]
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokens")
    t.add_argument("out")
    t.add_argument("--vocab", type=int, required=True)
    t.add_argument("--count", type=int, required=True)
    t.add_argument("--dtype", choices=["uint16", "uint32"], default="uint16")
    t.add_argument("--llmc", type=int, default=None, help="write an llm.c header with this version")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--random", action="store_true")
    t.add_argument("--low", type=int, default=0, help="smallest id (default 0)")
    t.add_argument("--poke", action="append", default=[], help="POS=VALUE: set token POS to VALUE")
    t.add_argument("--header-count", type=int, default=None, help="llm.c header token count (default: --count)")
    x = sub.add_parser("text")
    x.add_argument("out")
    a = p.parse_args()
    tokens(a) if a.cmd == "tokens" else text(a)


if __name__ == "__main__":
    sys.exit(main())
