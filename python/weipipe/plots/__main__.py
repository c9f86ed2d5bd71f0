"""CLI: python -m weipipe.plots {gantt,loss,compare} ... (README.md)."""
from __future__ import annotations

import argparse
import sys

from . import charts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m weipipe.plots",
                                description="Gantt charts of traces, loss curves of JSONL logs, and "
                                            "schedule comparisons from the simulator.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gantt", help="per-rank Gantt chart of one or more traces (weipipe-opt "
                                     "--simulate-trace, weipipe-run --trace), one panel each")
    g.add_argument("traces", nargs="+", metavar="TRACE.json")
    g.add_argument("-o", "--output", required=True, metavar="OUT.png")
    g.add_argument("--title", default=None)
    lo = sub.add_parser("loss", help="loss curves of one or more weipipe-run --log files")
    lo.add_argument("logs", nargs="+", metavar="LOG.jsonl")
    lo.add_argument("-o", "--output", required=True, metavar="OUT.png")
    lo.add_argument("--labels", default=None, help="comma-separated, one per log (default: file names)")
    c = sub.add_parser("compare", help="simulate several schedules of one model on one machine: a "
                                       "table on stdout and a bar chart")
    c.add_argument("onnx", metavar="MODEL.onnx")
    c.add_argument("--machine", required=True, help="a shipped machine model or a file (machines/README.md)")
    c.add_argument("--schedules", default="gpipe,1f1b,zb-h1,weipipe-interleave,weipipe-zb1",
                   help="comma-separated (default: %(default)s)")
    c.add_argument("--ranks", type=int, required=True)
    c.add_argument("--microbatches", type=int, required=True)
    c.add_argument("--input-shape", required=True, help="as weipipe-opt's, e.g. input_ids=2,16")
    c.add_argument("--weipipe-opt", default=None, help="compiler (default: on PATH, else build/bin)")
    c.add_argument("-o", "--output", required=True, metavar="OUT.png")
    args = p.parse_args(argv)
    try:
        if args.command == "gantt":
            charts.gantt(args.traces, args.output, args.title)
        elif args.command == "loss":
            labels = args.labels.split(",") if args.labels else None
            charts.loss(args.logs, args.output, labels)
        else:
            rows = charts.compare(args.onnx, args.machine, args.schedules.split(","), args.ranks,
                                  args.microbatches, args.input_shape, args.weipipe_opt, args.output)
            print(charts.table(rows))
    except charts.InputError as e:
        print(f"python -m weipipe.plots: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
