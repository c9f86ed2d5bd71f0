"""Lays a measured trace (weipipe-run --trace) beside a planned one
(weipipe-opt --simulate-trace) of the same artifact and checks that they are
the same iteration: the same ranks, and on each rank the same compute
actions (category, chunk, micro-batch) in the same order and the same sends
(peer, bytes) in the same order. Times differ (that is the point of having
both); order within a rank may not. Prints one line per trace and
"same actions".

usage: compare_traces.py PLANNED.json MEASURED.json
"""
import json
import sys


def load(path):
    trace = json.load(open(path))
    ranks = {}
    for e in trace["traceEvents"]:
        if e["ph"] != "X" or e["cat"] == "all_reduce":
            continue
        a = e.get("args", {})
        key = (e["cat"], a.get("chunk"), a.get("microbatch"), a.get("peer"),
               a.get("bytes"))
        ranks.setdefault(e["pid"], {}).setdefault(e["tid"], []).append(
            (e["ts"], key))
    for threads in ranks.values():
        for events in threads.values():
            events.sort()
    source = trace["otherData"]["source"]
    events = sum(len(v) for t in ranks.values() for v in t.values())
    print(f"{source}: {len(ranks)} ranks, {events} events, iteration "
          f"{float(trace['otherData']['iteration_seconds']) * 1e3:.3f} ms")
    return {r: {t: [k for _, k in v] for t, v in th.items()}
            for r, th in ranks.items()}


planned, measured = load(sys.argv[1]), load(sys.argv[2])
if planned != measured:
    for r in sorted(set(planned) | set(measured)):
        if planned.get(r) != measured.get(r):
            print(f"rank {r} differs:\n  planned  {planned.get(r)}\n"
                  f"  measured {measured.get(r)}")
    sys.exit(1)
print("same actions")
