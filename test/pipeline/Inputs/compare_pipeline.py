"""Train a model with pipeline schedules and compare with single-rank training.

  compare_pipeline.py --weipipe-opt OPT --weipipe-run RUN --onnx M.onnx
      --data D.bin --input-shape input_ids=2,16 --work DIR
      --config SCHEDULE:RANKS:MICROBATCHES[:EXTRA] ... [--steps 3]
      [--rtol 1e-6] [--bitwise SCHEDULE ...] [weipipe-run flags after --]

For every config: compiles the model single-rank (the reference, itself held
to PyTorch by the e2e tests) and for the schedule on RANKS ranks, both with
--microbatches=MICROBATCHES, trains both STEPS steps on the same data and
compares the loss and gradient norm of every step and every weight after the
last step. Relative errors are norm-wise per tensor (||a - b|| / ||b||) and
|a - b| / |b| per logged number. A schedule named with --bitwise must match to
the last bit (losses, norms and weights). EXTRA is passed to weipipe-opt for
both compilations ("ends=owned" becomes --ends=owned; "recompute" becomes
--recompute; "clip" adds --grad-clip 0.05 to both runs so that clipping
scales every update).

Prints one line per config; exits 1 on the first failure, naming it.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
        sys.exit(1)
    return p


def steps(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(float(r["loss"]), float(r["grad_norm"])) for r in rows]


SPLIT = {"zb-h1", "weipipe-zb1", "weipipe-zb2"}

p = argparse.ArgumentParser()
p.add_argument("--weipipe-opt", required=True)
p.add_argument("--weipipe-run", required=True)
p.add_argument("--onnx", required=True)
p.add_argument("--data", required=True)
p.add_argument("--input-shape", required=True)
p.add_argument("--work", required=True)
p.add_argument("--config", nargs="*", default=[])
p.add_argument("--sweep", default="",
               help="comma-separated rank counts: every schedule at each, with N = 2P "
                    "(weipipe-zb2: N = P; interleaved-1f1b: v = 2 where 2P chunks fit "
                    "--layers; tawpipe: nodes of 2 ranks, or 1 for odd P)")
p.add_argument("--layers", type=int, default=0, help="the model's layers (for --sweep)")
p.add_argument("--ends", default="", help="--sweep: also pass --ends=ENDS")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--rtol", type=float, default=1e-6)
p.add_argument("--bitwise", nargs="*", default=[])
p.add_argument("rest", nargs=argparse.REMAINDER)
a = p.parse_args()
extra_run = [x for x in a.rest if x != "--"]
os.makedirs(a.work, exist_ok=True)
SCHEDULES = ["single", "gpipe", "1f1b", "interleaved-1f1b", "zb-h1", "fsdp", "weipipe-naive",
             "weipipe-interleave", "weipipe-zb1", "weipipe-zb2", "tawpipe"]
for ranks in [int(x) for x in a.sweep.split(",") if x]:
    for sched in SCHEDULES:
        extras = [f"ends={a.ends}"] if a.ends else []
        n = 2 * ranks
        if sched == "single":
            if ranks != 1:
                continue
        elif ranks < 2 or (sched == "weipipe-zb1" and ranks % 2):
            continue
        if sched == "weipipe-zb2":
            n = ranks
        if sched == "interleaved-1f1b":
            extras.append(f"chunks-per-rank={2 if 2 * ranks <= a.layers else 1}")
        if sched in ("tawpipe", "fsdp"):  # fsdp: relays in nodes of 2
            extras.append(f"node-size={2 if ranks % 2 == 0 else 1}")
        a.config.append(f"{sched}:{ranks}:{n}:{'+'.join(extras)}")
if not a.config:
    p.error("no configurations (--config or --sweep)")
exact, close = set(), set()

references = {}


def train(wpp, tag, run_flags):
    log, st = os.path.join(a.work, tag + ".jsonl"), os.path.join(a.work, tag + ".st")
    run([a.weipipe_run, wpp, "--data", a.data, "--steps", str(a.steps), "--lr", "1e-3",
         "--log", log, "--save-weights", st, "--quiet", "--threads", "2"]
        + run_flags + extra_run)
    return steps(log), load_file(st)


for config in a.config:
    parts = config.split(":")
    sched, ranks, n = parts[0], int(parts[1]), int(parts[2])
    extras = parts[3].split("+") if len(parts) > 3 and parts[3] else []
    opt_flags, run_flags = [], []
    for e in extras:
        if e == "recompute":
            opt_flags.append("--recompute")
        elif e == "clip":
            run_flags += ["--grad-clip", "0.05"]
        elif "=" in e:
            opt_flags.append("--" + e)
        else:
            print(f"FAIL: unknown extra '{e}' in {config}")
            sys.exit(1)
    backward = "split" if sched in SPLIT else "fused"
    key = (n, backward, "recompute" in extras, tuple(run_flags))
    if key not in references:
        wpp = os.path.join(a.work, f"single-{n}-{backward}-{len(references)}.wpp")
        run([a.weipipe_opt, a.onnx, f"--input-shape={a.input_shape}", "--emit=artifact",
             f"--microbatches={n}", f"--backward={backward}", "-o", wpp]
            + (["--recompute"] if "recompute" in extras else []))
        references[key] = train(wpp, f"single-{len(references)}", run_flags)
    ref_steps, ref_w = references[key]
    tag = config.replace(":", "-").replace("=", "-").replace("+", "-")
    wpp = os.path.join(a.work, tag + ".wpp")
    run([a.weipipe_opt, a.onnx, f"--input-shape={a.input_shape}", "--emit=artifact",
         f"--microbatches={n}", f"--ranks={ranks}", f"--schedule={sched}", "-o", wpp]
        + opt_flags)
    got_steps, got_w = train(wpp, tag, run_flags)

    if len(got_steps) != len(ref_steps):
        print(f"FAIL: {config}: {len(got_steps)} steps logged, single-rank {len(ref_steps)}")
        sys.exit(1)
    loss_err = 0.0
    bitwise = True
    for (lo, go), (lr, gr) in zip(got_steps, ref_steps):
        for x, y in ((lo, lr), (go, gr)):
            loss_err = max(loss_err, abs(x - y) / max(abs(y), 1e-30))
            bitwise &= np.float64(x).tobytes() == np.float64(y).tobytes()
    if set(got_w) != set(ref_w):
        print(f"FAIL: {config}: weight names differ: "
              f"{sorted(set(got_w) ^ set(ref_w))[:5]}")
        sys.exit(1)
    w_err, worst = 0.0, ""
    for name in ref_w:
        x, y = got_w[name].astype(np.float64), ref_w[name].astype(np.float64)
        if x.shape != y.shape:
            print(f"FAIL: {config}: {name} has shape {x.shape}, single-rank {y.shape}")
            sys.exit(1)
        e = float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30))
        if e > w_err:
            w_err, worst = e, name
        bitwise &= got_w[name].tobytes() == ref_w[name].tobytes()
    (exact if bitwise else close).add(sched)
    if sched in a.bitwise and not bitwise:
        print(f"FAIL: {config}: not bit-identical to single-rank "
              f"(loss/norm rel err {loss_err:.3g}, weights {w_err:.3g})")
        sys.exit(1)
    if loss_err > a.rtol or w_err > a.rtol:
        print(f"FAIL: {config}: loss/norm rel err {loss_err:.3g}, weights {w_err:.3g} "
              f"({worst}) > {a.rtol:g}")
        sys.exit(1)
    print(f"{config}: {a.steps} steps, {len(ref_w)} tensors "
          f"{'bit-identical' if bitwise else f'within {a.rtol:g}'} to single-rank "
          f"(loss/norm {loss_err:.2g}, weights {w_err:.2g})")

print(f"{len(a.config)} configurations match single-rank training; bit-identical: "
      f"{', '.join(x for x in SCHEDULES if x in exact and x not in close) or 'none'}")
