"""Checks nn-discover-layers against the PyTorch module it was exported from.

For each bundled model: exports it (dynamo, default settings), runs
`weipipe-opt MODEL.onnx -nn-tie-parameters -nn-fuse -nn-discover-layers` and
parses its remark, then counts in the module itself: the layers (the numbered
children of its largest ModuleList), the parameter values of layer 0, and
the values outside the layers. Discovery must find as many layers as the
module has, each with exactly layer 0's parameter values, and the prologue
and epilogue together must hold exactly the rest (a tied embedding and head
counted once). The pipe.model cut along them (pipe-build-model) must verify,
with one chunk per layer taking layer 0's number of weights. Prints one line
per model for FileCheck; exits non-zero on a mismatch.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

REMARK = re.compile(
    r"nn-discover-layers: (\d+) x layer of (\d+) ops \(.*?; (\d+) parameter\(s\), (\d+) values each\); "
    r"prologue: .*?; (\d+) parameter\(s\), (\d+) values; epilogue: .*?; (\d+) parameter\(s\), (\d+) values"
    r"(?:; shared by prologue and epilogue: (.*))?$")


def module_counts(model):
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    layers = max(lists, key=len)
    per_layer = sum(p.numel() for p in layers[0].parameters())
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    rest = sum(p.numel() for p in model.parameters() if id(p) not in in_layers)
    return len(layers), per_layer, rest


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weipipe-opt", required=True)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    from weipipe.models import build_model
    from weipipe.models.export import export

    failed = False
    with tempfile.TemporaryDirectory() as d:
        for name in args.models:
            path = os.path.join(d, name + ".onnx")
            export(name, path, do_verify=False, log=lambda m: None)
            p = subprocess.run([args.weipipe_opt, path, "--input-shape=input_ids=2,16", "-nn-tie-parameters",
                                "-nn-fuse", "-nn-discover-layers", "-o", os.devnull],
                               capture_output=True, text=True)
            line = next((ln for ln in p.stderr.splitlines() if "nn-discover-layers:" in ln), "")
            m = REMARK.search(line)
            if p.returncode != 0 or not m:
                print(f"{name}: no layer remark (exit {p.returncode}): {p.stderr.strip()[:2000]}")
                failed = True
                continue
            layers, ops, _, per_layer, _, prologue, _, epilogue, shared = m.groups()
            want_layers, want_per_layer, want_rest = module_counts(build_model(name, 0))
            shared_values = 0
            if shared:  # counted in both the prologue and the epilogue
                shared_values = next(int(p.numel()) for n, p in build_model(name, 0).named_parameters(remove_duplicate=False)
                                     if n in {s.strip() for s in shared.split(",")})
            got_rest = int(prologue) + int(epilogue) - shared_values
            # The pipe.model cut along those layers: a chunk per layer, each
            # taking as many weights as layer 0 has parameters.
            q = subprocess.run([args.weipipe_opt, path, "--input-shape=input_ids=2,16", "-nn-tie-parameters",
                                "-nn-fuse", "-pipe-build-model", "-mlir-elide-elementsattrs-if-larger=1"],
                               capture_output=True, text=True)
            chunks = [ln for ln in q.stdout.splitlines() if "pipe.chunk layers" in ln]
            weights = {ln.count("pipe.param") for ln in chunks}
            chunks_ok = q.returncode == 0 and len(chunks) == want_layers and weights == {int(m.group(3))}
            if not chunks_ok:
                print(f"{name}: pipe-build-model (exit {q.returncode}): {len(chunks)} layer chunks, weights per "
                      f"chunk {sorted(weights)}: {q.stderr.strip()[:2000]}")
            ok = chunks_ok and (int(layers), int(per_layer), got_rest) == (want_layers, want_per_layer, want_rest)
            failed |= not ok
            print(f"{name}: {layers} x layer of {ops} ops, {per_layer} values each, {got_rest} outside the layers "
                  f"(module: {want_layers} x {want_per_layer}, {want_rest} outside): {'ok' if ok else 'MISMATCH'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
