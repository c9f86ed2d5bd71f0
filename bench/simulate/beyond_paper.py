"""Beyond the paper (issue 11): where do WZB1, WZB2 and TawPipe beat
WeiPipe-Interleave? A sweep of the simulator over sequence length S, hidden
size H, ranks P and the cluster's links, on the paper's model (LLaMA-2 style,
32 layers, vocabulary 32000; priced from two exported layers with
--simulate-layers), every cell as tokens/s per GPU of each schedule relative
to WeiPipe-Interleave, the best one named; OOM where the plan does not fit.

Settings: mixed-precision storage (16-bit activations and messages), tokens
per micro-batch G x S = 65,536 (G = 65536 / S), N = 4P micro-batches per
iteration (WZB2: N = P, its iteration is one round; tokens/s is a rate), WeiPipe-Interleave and TawPipe with recomputation (as the paper
runs WeiPipe), WZB1/WZB2 without (their W runs apart from B, which
recomputation cannot serve) and, when that does not fit, not at all.
TawPipe groups the ranks of a node (--node-size = the machine's ranks per
node).

usage: python bench/simulate/beyond_paper.py [--work DIR] [--weipipe-opt PATH]
       [--markdown OUT.md] [--json OUT.json] [--quick]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paper_tables import ROOT, command, export, parse_report, run  # noqa: E402

MACHINES = [("a800-nvlink-10gbe", 8), ("a800-pcie-10gbe", 8), ("h100-nvlink-ib", 8)]
SCHEDULES = [  # (column, schedule, recompute)
    ("Interleave", "weipipe-interleave", True),
    ("WZB1", "weipipe-zb1", False),
    ("WZB2", "weipipe-zb2", False),
    ("TawPipe", "tawpipe", True),
]


def simulate(opt, onnx, machine, node, ranks, seq, schedule, recompute):
    g = max(1, 65536 // seq)
    n = ranks if schedule == "weipipe-zb2" else 4 * ranks
    cmd = command(opt, onnx, machine, ranks, n, 32, seq, g, schedule, recompute,
                  node=node if schedule == "tawpipe" else 1)
    rc, out = run(cmd)
    if rc != 0:
        return {"error": out.strip().splitlines()[-1], "command": " ".join(cmd)}
    return dict(parse_report(out), command=" ".join(cmd))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "weipipe-paper"))
    p.add_argument("--weipipe-opt", default=os.path.join(ROOT, "build", "bin", "weipipe-opt"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--markdown")
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true", help="H = 1024 and 4096, S = 4K and 64K, P = 16 only")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    hidden = [1024, 4096] if a.quick else [1024, 2048, 4096]
    seqs = [4096, 65536] if a.quick else [4096, 16384, 65536]
    ranks = [16] if a.quick else [8, 16]
    results = []
    lines = ["| machine | P | H | S | G | " + " | ".join(c for c, _, _ in SCHEDULES) + " | best / Interleave |",
             "|---|---|---|---|---|" + "---|" * len(SCHEDULES) + "---|"]
    for machine, node in MACHINES:
        for P in ranks:
            for h in hidden:
                onnx = export(a.work, h, a.python)
                for s in seqs:
                    print(f"{machine} P={P} H={h} S={s} ...", file=sys.stderr, flush=True)
                    row = {c: simulate(a.weipipe_opt, onnx, machine, node, P, s, sch, rc)
                           for c, sch, rc in SCHEDULES}
                    base = row["Interleave"]
                    fits = {c: r for c, r in row.items() if "error" not in r and not r["oom"]}
                    best = max(fits, key=lambda c: fits[c]["tokens_per_gpu"]) if fits else None

                    def cell(c):
                        r = row[c]
                        if "error" in r:
                            return "n/a"
                        if r["oom"]:
                            return "OOM"
                        if "error" in base or base["oom"]:
                            return f"{r['tokens_per_gpu']:,.0f}"
                        return f"{r['tokens_per_gpu'] / base['tokens_per_gpu']:.2f}x"

                    gain = (fits[best]["tokens_per_gpu"] / base["tokens_per_gpu"]
                            if best and base in fits.values() else None)
                    lines.append(f"| {machine} | {P} | {h} | {s} | {max(1, 65536 // s)} | " +
                                 " | ".join(cell(c) for c, _, _ in SCHEDULES) +
                                 f" | {best or 'none fits'}" + (f" {gain:.2f}x" if gain else "") + " |")
                    results.append({"machine": machine, "P": P, "H": h, "S": s, "results": row, "best": best,
                                    "gain_over_interleave": gain})
    text = ("Interleave: WeiPipe-Interleave's tokens/s per GPU (when it does not fit, the others' absolute "
            "tokens/s); the others relative to it.\n\n" + "\n".join(lines))
    print(text)
    if a.markdown:
        open(a.markdown, "w").write(text + "\n")
    if a.json:
        json.dump(results, open(a.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
