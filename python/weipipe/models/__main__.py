"""CLI: python -m weipipe.models {list,export}."""
from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m weipipe.models", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the models")
    e = sub.add_parser("export", help="export a model to ONNX and verify it")
    e.add_argument("name")
    e.add_argument("-o", "--output", required=True, help="OUT.onnx")
    e.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    e.add_argument("--opset", type=int, default=None, help="default: the exporter's own default")
    e.add_argument("--batch", type=int, default=2)
    e.add_argument("--seq", type=int, default=16)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--external-data", action="store_true",
                   help="store initializers in OUT.onnx.data next to the model")
    e.add_argument("--no-fold", action="store_true",
                   help="no constant folding / graph optimization (dynamo optimize=False, torchscript "
                        "do_constant_folding=False): initializers keep their PyTorch parameter names")
    e.add_argument("--attn", choices=["sdpa", "eager"], default=None,
                   help="HF models: transformers attention implementation (default sdpa)")
    e.add_argument("--no-verify", action="store_true", help="skip checker/onnxruntime verification")
    e.add_argument("--layers", type=int, default=None,
                   help="another number of layers than the model's (pipeline tests; not bert)")
    e.add_argument("--no-trainable-metadata", action="store_true",
                   help="do not record the trained initializers in the model property weipipe.trainable "
                        "(the file is then as a plain torch.onnx.export writes it)")
    e.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    a = p.parse_args(argv)

    from . import MODELS

    if a.cmd == "list":
        for s in MODELS.values():
            print(f"{s.name:12s} {s.kind:5s} {s.description}")
        return 0

    torch.set_num_threads(a.threads)
    from .export import ExportError, VerificationError, export

    if a.name not in MODELS:
        print(f"error: unknown model {a.name!r}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    if a.seq < 6 or a.batch < 1:
        print("error: need --seq >= 6 and --batch >= 1", file=sys.stderr)
        return 2
    if a.attn is not None and MODELS[a.name].kind != "hf":
        print(f"error: --attn applies to HF models only; {a.name} has written-out attention", file=sys.stderr)
        return 2
    try:
        export(a.name, a.output, exporter=a.exporter, opset=a.opset, batch=a.batch, seq=a.seq,
               external_data=a.external_data, seed=a.seed, do_verify=not a.no_verify, fold=not a.no_fold, attn=a.attn,
               layers=a.layers, record=not a.no_trainable_metadata)
    except (ExportError, VerificationError) as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
