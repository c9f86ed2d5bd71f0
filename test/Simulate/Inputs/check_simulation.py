"""Checks weipipe-opt --simulate's report and trace against what they must be,
computed here independently of the compiler:

  * the GEMM FLOPs of an iteration are 6 x tokens x (the elements of every
    weight a MatMul/Gemm of the ONNX graph multiplies by): forward 2 per
    weight element and token, backward 4 (input and weight gradients);
  * the attention FLOPs are 3.5 x the causal forward's (the backward is 2.5
    forwards): 2 B H S^2 (D + Dv) without a mask, of which the lower
    triangle with its diagonal is the fraction (S+1)/(2S), so
    B H S (S+1) (D + Dv) per layer and micro-batch;
  * the trace is Chrome trace JSON with one process per rank, no two compute
    events of a rank overlap, every event ends within the iteration, and
    the sends' bytes add up to the report's links.

usage: check_simulation.py --onnx M.onnx --report R.txt --trace T.json
         --tokens T --microbatches N --batch B --seq S --heads H --head-dim D
         --layers L
"""
import argparse
import json
import re
import sys

import onnx


def weight_elements(model):
    inits = {i.name: i for i in model.graph.initializer}
    produced = {o: n for n in model.graph.node for o in n.output}

    def weight(name):
        if name in inits:
            return inits[name]
        n = produced.get(name)
        if n is not None and n.op_type == "Transpose" and n.input[0] in inits:
            return inits[n.input[0]]
        return None

    total = 0
    for n in model.graph.node:
        if n.op_type in ("MatMul", "Gemm"):
            for x in n.input[:2]:
                w = weight(x)
                if w is not None:
                    count = 1
                    for d in w.dims:
                        count *= d
                    total += count
    return total


def main():
    p = argparse.ArgumentParser()
    for a in ("--onnx", "--report", "--trace"):
        p.add_argument(a, required=True)
    for a in ("--tokens", "--microbatches", "--batch", "--seq", "--heads",
              "--head-dim", "--layers"):
        p.add_argument(a, type=int, required=True)
    args = p.parse_args()
    report = open(args.report).read()
    flops = re.search(r"model FLOPs per iteration: (\d+) \(GEMMs (\d+), "
                      r"attention (\d+);", report)
    if not flops:
        sys.exit("no FLOPs line in the report")
    gemm, attention = int(flops.group(2)), int(flops.group(3))
    want_gemm = 6 * args.tokens * weight_elements(onnx.load(args.onnx))
    s = args.seq
    forward = args.batch * args.heads * s * (s + 1) * 2 * args.head_dim
    want_attention = 3.5 * forward * args.layers * args.microbatches
    ok = True
    for what, got, want in (("GEMM", gemm, want_gemm),
                            ("attention", attention, want_attention)):
        if abs(got - want) > 1e-6 * want + 1:
            print(f"{what} FLOPs: report {got}, expected {want:.0f}")
            ok = False
        else:
            print(f"{what} FLOPs match: {got}")

    trace = json.load(open(args.trace))
    events = trace["traceEvents"]
    if trace["otherData"].get("source") != "simulator":
        print("otherData.source is not simulator")
        ok = False
    ranks = {e["pid"] for e in events if e["ph"] == "M"}
    end = float(trace["otherData"]["iteration_seconds"]) * 1e6
    per_rank = {}
    sent = 0.0
    for e in events:
        if e["ph"] != "X":
            continue
        if e["dur"] < 0 or e["ts"] < 0 or e["ts"] + e["dur"] > end * 1.0001 + 1:
            print(f"event outside the iteration: {e}")
            ok = False
        if e["tid"] == 0:
            per_rank.setdefault(e["pid"], []).append((e["ts"], e["dur"]))
        else:
            sent += e["args"]["bytes"]
    for r, spans in per_rank.items():
        spans.sort()
        for (a, da), (b, _) in zip(spans, spans[1:]):
            if b < a + da - 1e-6 * max(1.0, a + da):
                print(f"rank {r}: compute events overlap at {b}")
                ok = False
    reported = 0.0
    units = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
    for m in re.finditer(r"^    \d+ -> \d+: ([\d.]+) (KiB|MiB|GiB)", report,
                         re.M):
        reported += float(m.group(1)) * units[m.group(2)]
    if abs(sent - reported) > 0.01 * reported:
        print(f"trace sends {sent} bytes, the report's links {reported}")
        ok = False
    print(f"trace: {len(ranks)} ranks, "
          f"{sum(len(v) for v in per_rank.values())} compute events")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
