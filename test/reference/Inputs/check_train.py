"""Check reference training runs (their --log and --save-weights) independently of weipipe.reference.

  check_train.py --model NAME --onnx F.onnx --data TOK.bin --batch B --seq S
                 --run 'log=LOG weights=W.safetensors steps=N mb=M lr=LR [schedule=cosine warmup=W
                        min_lr=X ignore=I]' ...

A run with lr=0 must leave the weights unchanged. For each run:

* the log has N steps 0.. with finite loss and grad_norm, tokens = the number
  of targets != I (default -100: all M*B*S),
  sequential windows (s*M*B .. (s+1)*M*B-1, mod the window count), and the LR
  of the documented schedule (SCHEDULE constant|cosine, default constant);
* the step-0 loss (with LR 0 every step's) equals the mean token
  cross-entropy (over targets != I) of onnxruntime's logits of the ONNX file on
  windows cut from the file with numpy (rel 1e-5);
* LR > 0: the loss decreases on average (last < first, and the mean of steps
  1.. < step 0);
* the safetensors has exactly the ONNX float initializers that hold parameters
  (by name, or bitwise equal to a parameter of build_model(NAME) or its
  transpose), with the initializers' shapes and dtype; with LR 0 every tensor
  is bitwise equal to the initializer, else every one changed and copies of
  one parameter (equal or transposed in the file) still agree;
* a 1-step run (steps=1, weight decay wd=WD, default 0.01) made AdamW's first
  step: every tensor satisfies |p1 - d*p0| <= lr (bias-corrected Adam moves each
  element by lr*|g|/(|g|+eps) <= lr), with d = 1 - lr*WD for matrices (train.decays) and
  d = 1 for 1-D ones (no decay), and the largest move is > lr/2.
"""
import argparse
import json
import math
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from safetensors.numpy import load_file

p = argparse.ArgumentParser()
for k in ["--model", "--onnx", "--data"]:
    p.add_argument(k, required=True)
for k in ["--batch", "--seq"]:
    p.add_argument(k, type=int, required=True)
p.add_argument("--run", action="append", required=True)
a = p.parse_args()
B, S = a.batch, a.seq
fails = []


def fail(msg):
    fails.append(msg)
    print("FAIL:", msg)


tok = np.fromfile(a.data, dtype="<u2").astype(np.int64)
nwin = len(tok) // (S + 1)
so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])

from weipipe.models import build_model  # noqa: E402
from weipipe.reference.train import decays  # noqa: E402

model = build_model(a.model, 0)
pnames = set()
pvals = []
for n, t in model.named_parameters(remove_duplicate=False):
    pnames.add(n)
    pvals.append(t.detach().numpy())
FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(a.onnx).graph.initializer if t.data_type in FLOAT}


def same(u, v):
    return u.dtype == v.dtype and u.shape == v.shape and np.ascontiguousarray(u).tobytes() == np.ascontiguousarray(v).tobytes()


def is_param(name, v):
    if name in pnames or any(name.endswith("." + q) for q in pnames):
        return True
    return any(same(v, q) or (q.ndim == 2 and same(v, q.T)) for q in pvals)


expected = {n for n, v in inits.items() if is_param(n, v)}


def cut(s, M):
    ks = [k % nwin for k in range(s * M * B, (s + 1) * M * B)]
    win = np.stack([tok[k * (S + 1):(k + 1) * (S + 1)] for k in ks])
    return win[:, :-1], win[:, 1:]


def ort_loss(s, M, ignore):
    x, y = cut(s, M)
    known = {"input_ids": x, "attention_mask": np.ones_like(x),
             "position_ids": np.broadcast_to(np.arange(S), x.shape).copy()}
    lg = sess.run(["logits"], {i.name: known[i.name] for i in sess.get_inputs()})[0].astype(np.float64)
    mx = lg.max(-1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(-1)) + mx[..., 0]
    ce = lse - np.take_along_axis(lg, y[..., None], -1)[..., 0]
    return float(ce[y != ignore].mean())


for run in a.run:
    f = dict(kv.split("=", 1) for kv in run.split())
    log, weights, N, M, LR = f["log"], f["weights"], int(f["steps"]), int(f["mb"]), float(f["lr"])
    sched = f.get("schedule", "constant")
    W = int(f.get("warmup", 0))
    min_lr = float(f.get("min_lr", 0.0))
    ignore = int(f.get("ignore", -100))
    wd = float(f.get("wd", 0.01))
    unchanged = LR == 0
    print(f"run {log}:")
    if ignore != -100:
        print(f"ignore_index {ignore}: {sum(int(np.count_nonzero(cut(s, M)[1] == ignore)) for s in range(N))} "
              "targets ignored")
    recs = [json.loads(line) for line in open(log)]
    if [r["step"] for r in recs] != list(range(N)):
        fail(f"log steps {[r['step'] for r in recs]} != 0..{N - 1}")
    for r in recs:
        s = r["step"]
        for k in ["loss", "grad_norm", "lr"]:
            if not math.isfinite(r[k]):
                fail(f"step {s}: {k} {r[k]} not finite")
        ntok = int(np.count_nonzero(cut(s, M)[1] != ignore))
        if r["tokens"] != ntok:
            fail(f"step {s}: tokens {r['tokens']} != {ntok}")
        want = [k % nwin for k in range(s * M * B, (s + 1) * M * B)]
        if r["windows"] != want:
            fail(f"step {s}: windows {r['windows']} != {want}")
        if s < W:
            lr = LR * (s + 1) / W
        elif sched == "cosine":
            lr = min_lr + (LR - min_lr) * 0.5 * (1 + math.cos(math.pi * (s - W) / max(1, N - W)))
        else:
            lr = LR
        if abs(r["lr"] - lr) > 1e-12 * max(1.0, abs(lr)):
            fail(f"step {s}: lr {r['lr']} != {lr}")
    losses = [r["loss"] for r in recs]
    print("losses", " ".join(f"{x:.4f}" for x in losses))
    for s in range(N) if unchanged else [0]:
        ref = ort_loss(s, M, ignore)
        if abs(losses[s] - ref) > 1e-5 * abs(ref):
            fail(f"step {s}: loss {losses[s]} != onnxruntime cross-entropy {ref}")
        else:
            print(f"step {s} loss matches onnxruntime cross-entropy (rel {abs(losses[s] - ref) / ref:.1e})")
    if not unchanged and N >= 2:
        if not (losses[-1] < losses[0] and np.mean(losses[1:]) < losses[0]):
            fail(f"loss does not decrease on average: {losses}")
        else:
            print("loss decreases")
    w = load_file(weights)
    if set(w) != expected:
        fail(f"safetensors keys differ from the parameter initializers: extra {sorted(set(w) - expected)}, "
             f"missing {sorted(expected - set(w))}")
    else:
        print(f"safetensors: the {len(w)} parameter initializers of {len(inits)} float initializers")
    for k in sorted(set(w) & expected):
        if w[k].shape != inits[k].shape or w[k].dtype != inits[k].dtype:
            fail(f"{k}: saved {w[k].dtype}{list(w[k].shape)} != initializer {inits[k].dtype}{list(inits[k].shape)}")
        elif unchanged and not same(w[k], inits[k]):
            fail(f"{k}: lr 0 but not bitwise equal to the initializer")
        elif not unchanged and same(w[k], inits[k]):
            fail(f"{k}: unchanged after training")
    if unchanged:
        print("saved weights: bitwise equal to the ONNX initializers")
    else:
        keys = sorted(set(w) & expected)
        for i, k1 in enumerate(keys):
            for k2 in keys[i + 1:]:
                u, v = inits[k1], inits[k2]
                if same(u, v) and not same(w[k1], w[k2]):
                    fail(f"{k1} and {k2} are copies in the file but differ after training")
                if u.ndim == 2 and same(u.T, v) and not same(w[k1].T, w[k2]):
                    fail(f"{k1} and {k2} are transposed copies in the file but not after training")
        print("saved weights: shapes match the ONNX layout, all changed, copies consistent")
    if N == 1 and not unchanged:
        biggest, nfail = 0.0, len(fails)
        for k in sorted(set(w) & expected):
            d = 1 - LR * wd if decays(inits[k].shape) else 1.0
            move = np.abs(w[k].astype(np.float64) - d * inits[k].astype(np.float64))
            biggest = max(biggest, float(move.max()) / LR)
            if move.max() > LR * (1 + 1e-3):
                fail(f"{k}: AdamW step 1 moved an element by {move.max():.3g} > lr {LR:g} "
                     f"(decay {'applied' if d != 1 else 'not applied'} to this {inits[k].ndim}-D tensor)")
        if biggest < 0.5:
            fail(f"AdamW step 1: largest move {biggest:.3g}*lr < lr/2")
        if len(fails) == nfail:
            print(f"AdamW step 1: every element moved by <= lr after decay of the >= 2-D tensors only "
                  f"(largest {biggest:.4f}*lr)")
if fails:
    sys.exit(f"{len(fails)} check(s) failed")
print("OK")
