"""Exports one bundled model at every opset in a range and imports each export.

Prints one line per opset: the route taken, the number of parameters and the
count of the ops that show the model's structure, for FileCheck. Exits non-zero
(with the failing command's output) if an export or an import fails.

Routes (what each exporter can emit, see python/weipipe/models/README.md):
TorchScript for opsets 13..17 (at 13 with eager attention: aten's SDPA needs
14), the default dynamo exporter for 18..23, and the opset-23 dynamo export
converted with onnx.version_converter above that. Exports run in this one
process, so torch is imported once.
"""
import argparse
import collections
import os
import re
import subprocess
import sys


NEWEST_NATIVE = 23  # the newest opset torch's dynamo exporter emits itself


def export_at(model: str, opset: int, path: str, out_dir: str) -> str:
    import onnx
    from weipipe.models.export import convert, export, save

    quiet = lambda msg: None  # noqa: E731
    if opset < 18:
        export(model, path, exporter="torchscript", opset=opset, do_verify=False,
               attn="eager" if opset < 14 else None, log=quiet)
        return "torchscript"
    if opset <= NEWEST_NATIVE:
        export(model, path, exporter="dynamo", opset=opset, do_verify=False, log=quiet)
        return "dynamo"
    base = os.path.join(out_dir, f"{model}.{NEWEST_NATIVE}.onnx")
    if not os.path.exists(base):
        export(model, base, exporter="dynamo", opset=NEWEST_NATIVE, do_verify=False, log=quiet)
    save(convert(onnx.load(base), opset, quiet), path)
    return "dynamo+convert"


def run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stdout.write(f"FAILED: {' '.join(cmd)}\n{p.stdout}{p.stderr}")
        sys.exit(1)
    return p.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--weipipe-opt", required=True)
    ap.add_argument("--opsets", default="13-28", help="LO-HI")
    ap.add_argument("--out", required=True, help="directory for the exports")
    ap.add_argument("--ops", default="attention,rms_norm,rotary,layer_norm,softmax")
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.opsets.split("-"))
    os.makedirs(a.out, exist_ok=True)
    for opset in range(lo, hi + 1):
        path = os.path.join(a.out, f"{a.model}.{opset}.onnx")
        try:
            exporter = export_at(a.model, opset, path, a.out)
        except Exception as e:  # report which opset failed, then stop
            print(f"FAILED: export of {a.model} at opset {opset}: {e}")
            return 1
        ir = run([a.weipipe_opt, path, "--input-shape=input_ids=2,16"])
        ops = collections.Counter(re.findall(r"= nn\.([a-z_]+)", ir))
        params = len(re.findall(r"^\s*nn\.parameter ", ir, re.M))
        counts = " ".join(f"{op}={ops.get(op, 0)}" for op in a.ops.split(","))
        print(f"opset {opset} {exporter}: params={params} {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
