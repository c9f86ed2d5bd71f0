"""CLI: python -m weipipe.sweep [--families A,B|--all] ... (README.md)."""
from __future__ import annotations

import argparse
import sys

from . import driver


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m weipipe.sweep",
        description="Export every transformers *ForCausalLM family from a tiny config, compile it with "
                    "weipipe-opt and train it with weipipe-run against onnxruntime and torch.optim.AdamW.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--families", help="comma-separated class names (MistralForCausalLM,...)")
    which.add_argument("--all", action="store_true", help="every *ForCausalLM of the installed transformers")
    which.add_argument("--list", action="store_true", help="print the families and exit")
    which.add_argument("--worker", metavar="FAMILY", help=argparse.SUPPRESS)  # one family, in-process
    p.add_argument("--weipipe-opt", default=None, help="compiler (default: on PATH, else build/bin)")
    p.add_argument("--weipipe-run", default=None, help="trainer (default: on PATH, else build/bin)")
    p.add_argument("--workdir", default=None,
                   help="directory for the per-family files (default: a temporary one, removed)")
    p.add_argument("--keep", action="store_true", help="keep each family's files (model.onnx, logs, ...)")
    p.add_argument("--jsonl", default=None, help="OUT.jsonl: one object per family with every measurement")
    p.add_argument("--markdown", default=None, help="OUT.md: the table family | result | reason")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per family (default 600)")
    p.add_argument("--experts-implementation", default=None, metavar="IMPL",
                   help="mixture-of-experts implementation for every family (transformers' "
                        "experts_implementation, e.g. eager; default: transformers' own, grouped_mm, "
                        "which torch.onnx cannot export)")
    p.add_argument("--memory-limit-gb", type=float, default=8.0,
                   help="address-space limit per family process, 0 = none (default 8)")
    a = p.parse_args(argv)

    if a.worker:
        from .worker import Tools

        tools = Tools(a.weipipe_opt, a.weipipe_run, a.experts_implementation)
        return driver.worker_main(a.worker, a.workdir, tools, a.memory_limit_gb)
    if a.list:
        print("\n".join(driver.families(None)))
        return 0
    try:
        fams = driver.families(a.families)
        tools = driver.find_tools(a.weipipe_opt, a.weipipe_run, a.experts_implementation)
    except driver.SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = driver.sweep(fams, tools, a.workdir, a.keep, a.timeout, a.memory_limit_gb, a.jsonl, a.markdown)
    return 0 if all(r["result"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
