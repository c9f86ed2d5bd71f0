"""CLI: python -m weipipe.reference {train,forward,batches} (README.md)."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .errors import RefError


def _betas(s: str) -> tuple[float, float]:
    try:
        b1, b2 = (float(x) for x in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected B1,B2 (e.g. 0.9,0.999), got {s!r}") from None
    return b1, b2


def _data_args(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="weipipe.models name the ONNX file was exported from")
        p.add_argument("--onnx", required=True, help="the exported MODEL.onnx: source of the initial weights")
        p.add_argument("--seed", type=int, default=0,
                       help="build_model seed; must be the export's seed (default 0)")
    p.add_argument("--data", required=True, help="token file (.bin raw or llm.c) or text (.txt, byte tokens)")
    p.add_argument("--data-format", choices=["auto", "bin", "text"], default="auto",
                   help="auto (default): .txt is text, anything else a token file")
    p.add_argument("--token-dtype", choices=["uint16", "uint32"], default=None,
                   help="raw token files: default uint16 when vocab <= 65536, else uint32")
    p.add_argument("--data-order", choices=["sequential", "shuffle"], default="sequential")
    p.add_argument("--data-seed", type=int, default=None, help="shuffle seed (default: --seed)")
    p.add_argument("--batch", type=int, default=None, help="rows per micro-batch (default: ONNX input shape)")
    p.add_argument("--seq", type=int, default=None, help="sequence length S (default: ONNX input shape)")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime intra-op threads (default 1)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m weipipe.reference",
                                description="Independent PyTorch reference trainer for weipipe (README.md).")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train the module from the ONNX file's weights")
    _data_args(t)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--microbatches", type=int, default=1, help="micro-batches per step (default 1)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=0.01, help="AdamW, parameters with >= 2 dims only")
    t.add_argument("--betas", type=_betas, default=(0.9, 0.999), help="B1,B2 (default 0.9,0.999)")
    t.add_argument("--eps", type=float, default=1e-8)
    t.add_argument("--grad-clip", type=float, default=0.0, help="max global grad norm; 0 = off (default)")
    t.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    t.add_argument("--warmup-steps", type=int, default=0)
    t.add_argument("--min-lr", type=float, default=0.0, help="cosine floor (default 0)")
    t.add_argument("--ignore-index", type=int, default=-100)
    t.add_argument("--log", default=None, help="FILE.jsonl: one JSON object per step")
    t.add_argument("--save-weights", default=None,
                   help="FILE.safetensors: final parameters keyed by ONNX initializer name, ONNX layout")
    t.add_argument("--quiet", action="store_true", help="no per-step line on stdout")

    f = sub.add_parser("forward", help="logits of the first batch (windows 0..B-1 of the data order)")
    _data_args(f)
    f.add_argument("--out", required=True, help="logits.npy [B, S, V] float32")
    f.add_argument("--ids-out", default=None, help="also write the input ids [B, S] int64 here (.npy)")
    f.add_argument("--engine", choices=["torch", "onnxruntime"], default="torch",
                   help="torch: the reference module loaded from the ONNX file (default); "
                        "onnxruntime: the ONNX file itself")
    f.add_argument("--ort-out", default=None,
                   help="also write onnxruntime's logits of the ONNX file (same ids, same --weights) here")
    f.add_argument("--weights", default=None,
                   help="FILE.safetensors (keyed by initializer name) to use instead of the file's weights")

    bt = sub.add_parser("batches", help="dump the exact inputs/targets of each step (.npz)")
    _data_args(bt, model=False)
    bt.add_argument("--vocab", type=int, required=True, help="vocabulary size (token id bound, dtype default)")
    bt.add_argument("--steps", type=int, required=True)
    bt.add_argument("--microbatches", type=int, default=1)
    bt.add_argument("--seed", type=int, default=0, help="default shuffle seed")
    bt.add_argument("--out", required=True,
                    help="FILE.npz: inputs/targets int64 [steps, M, B, S], windows int64 [steps, M, B]")

    a = p.parse_args(argv)
    try:
        return _run(a)
    except RefError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(a) -> int:
    from . import data as D

    if a.threads < 1:
        raise RefError(f"--threads must be >= 1, got {a.threads}")
    data_seed = a.seed if a.data_seed is None else a.data_seed

    if a.cmd == "batches":
        from .outputs import Outputs

        if a.batch is None or a.seq is None:
            raise RefError("batches needs --batch and --seq")
        if a.batch < 1 or a.seq < 1 or a.microbatches < 1 or a.steps < 0:
            raise RefError("need --batch, --seq, --microbatches >= 1 and --steps >= 0")
        tf = D.load_tokens(a.data, a.vocab, a.token_dtype, a.data_format)
        w = D.Windows(tf, a.seq, a.data_order, data_seed)
        shape = (a.steps, a.microbatches, a.batch)
        inputs = np.zeros(shape + (a.seq,), np.int64)
        targets = np.zeros_like(inputs)
        wins = np.zeros(shape, np.int64)
        for s in range(a.steps):
            for m, (x, y, idx) in enumerate(w.step(s, a.microbatches, a.batch)):
                inputs[s, m], targets[s, m], wins[s, m] = x, y, idx
        outs = Outputs()
        try:
            tmp = outs.reserve(a.out)
            with open(tmp, "wb") as fh:
                np.savez(fh, inputs=inputs, targets=targets, windows=wins)
            outs.commit()
        finally:
            outs.discard()
        print(f"{tf.describe()}; {w.n} windows of {a.seq + 1}; wrote {a.steps} steps to {a.out}")
        return 0

    import torch

    torch.set_num_threads(a.threads)
    from . import train as T

    outs = T.Outputs()
    try:
        if a.cmd == "forward":
            if a.ort_out and a.engine != "torch":
                raise RefError("--ort-out goes with --engine torch (it adds onnxruntime's logits to the module's)")
            m = T.load_model(a.model, a.onnx, a.seed, a.weights if a.engine == "torch" else None)
            B, S = T.resolve_shape(m, a.batch, a.seq)
            tf = D.load_tokens(a.data, m.vocab, a.token_dtype, a.data_format)
            w = D.Windows(tf, S, a.data_order, data_seed)
            x, _, _ = w.batch(0, B)
            out_tmp = outs.reserve(a.out)
            ids_tmp = outs.reserve(a.ids_out) if a.ids_out else None
            ort_tmp = outs.reserve(a.ort_out) if a.ort_out else None
            weights = T.read_safetensors(a.weights) if a.weights else None
            results = []
            if a.engine == "torch":
                with torch.no_grad():
                    results.append((out_tmp, T.logits(m, torch.from_numpy(x)).numpy()))
            if a.engine == "onnxruntime" or ort_tmp:
                from .ort import ort_logits

                lg = ort_logits(a.onnx, x, weights, threads=a.threads)
                results.append((out_tmp if a.engine == "onnxruntime" else ort_tmp, lg))
            if ids_tmp:
                results.append((ids_tmp, x))
            for path, arr in results:
                with open(path, "wb") as fh:
                    np.save(fh, arr)
            outs.commit()
            T.log(f"{a.engine}: logits {list(results[0][1].shape)} of windows 0..{B - 1} -> {a.out}"
                  + (f"; onnxruntime's -> {a.ort_out}" if a.ort_out else ""))
            return 0

        cfg = T.TrainConfig(
            steps=a.steps, microbatches=a.microbatches, lr=a.lr, weight_decay=a.weight_decay,
            betas=a.betas, eps=a.eps, grad_clip=a.grad_clip, warmup_steps=a.warmup_steps,
            lr_schedule=a.lr_schedule, min_lr=a.min_lr, ignore_index=a.ignore_index,
        )
        T.check_config(cfg)
        m = T.load_model(a.model, a.onnx, a.seed)
        B, S = T.resolve_shape(m, a.batch, a.seq)
        tf = D.load_tokens(a.data, m.vocab, a.token_dtype, a.data_format)
        w = D.Windows(tf, S, a.data_order, data_seed)
        T.log(f"{tf.describe()}; {w.n} windows of {S + 1} ({a.data_order}); "
              f"{cfg.steps} steps x {cfg.microbatches} micro-batches x {B} rows")
        log_tmp = outs.reserve(a.log) if a.log else None
        w_tmp = outs.reserve(a.save_weights) if a.save_weights else None
        fh = open(log_tmp, "w") if log_tmp else None
        try:
            T.train(m, w, B, cfg, fh, echo=not a.quiet)
        finally:
            if fh:
                fh.close()
        if w_tmp:
            run = {"model": a.model, "onnx": a.onnx, "seed": a.seed, "data": a.data, "data_order": a.data_order,
                   "data_seed": data_seed, "batch": B, "seq": S, **vars(cfg)}
            # one key: safetensors stores metadata in hash order, which would make reruns differ byte-wise
            meta = {"weipipe.reference": json.dumps(run, sort_keys=True)}
            T.save_weights(m, w_tmp, meta)
        outs.commit()
        return 0
    finally:
        outs.discard()


if __name__ == "__main__":
    sys.exit(main())
