"""Compares two `weipipe-opt --simulate` reports: the iteration time, every
rank's peak memory and the bytes on every link, each within a relative
tolerance. Used to hold a model priced with --simulate-layers from two of its
layers to the same model exported and compiled at full depth."""
from __future__ import annotations

import argparse
import re
import sys

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse(path: str) -> dict:
    text = open(path).read()
    m = re.search(r"iteration time: ([0-9.]+) (us|ms|s) ", text)
    if not m:
        sys.exit(f"{path}: no iteration time")
    out = {"time": float(m[1]) * UNITS[m[2]], "peak": {}, "links": {}}
    for r, v, u in re.findall(r"^ +(\d+) +[0-9.]+ \w+ +[0-9.]+ \w+ +([0-9.]+) (B|KiB|MiB|GiB)", text, re.M):
        out["peak"][int(r)] = float(v) * UNITS[u]
    for a, b, v, u in re.findall(r"^ +(\d+) -> (\d+): ([0-9.]+) (B|KiB|MiB|GiB)", text, re.M):
        out["links"][(int(a), int(b))] = float(v) * UNITS[u]
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("expected")
    p.add_argument("got")
    p.add_argument("--time", type=float, default=0.02, help="relative tolerance of the iteration time")
    p.add_argument("--memory", type=float, default=0.01, help="relative tolerance of each rank's peak")
    p.add_argument("--link-ratio", type=float, default=1.0,
                   help="expected bytes per link = this x got's (0.5: expected sends 16-bit)")
    a = p.parse_args()
    e, g = parse(a.expected), parse(a.got)
    ok = True

    def close(x: float, y: float, tol: float) -> bool:
        return abs(x - y) <= tol * max(abs(x), abs(y), 1e-30)

    if close(e["time"], g["time"], a.time):
        print("iteration time within tolerance")
    else:
        ok = False
        print(f"iteration time differs: {e['time']:.6g} s vs {g['time']:.6g} s")
    if e["peak"].keys() == g["peak"].keys() and e["peak"] and all(
            close(e["peak"][r], g["peak"][r], a.memory) for r in e["peak"]):
        print(f"peak memory within tolerance on {len(e['peak'])} ranks")
    else:
        ok = False
        print(f"peak memory differs: {e['peak']} vs {g['peak']}")
    if g["peak"] and e["peak"].keys() == g["peak"].keys() and all(
            e["peak"][r] < g["peak"][r] for r in g["peak"]):
        print("expected holds less memory on every rank")
    if e["links"].keys() == g["links"].keys() and e["links"] and all(
            close(e["links"][k], a.link_ratio * g["links"][k], 0.005) for k in e["links"]):
        print(f"bytes as expected on {len(e['links'])} links")
    else:
        ok = False
        print(f"link bytes differ: {e['links']} vs {g['links']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
