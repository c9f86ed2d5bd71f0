"""Check a reference training run (its --log and --save-weights) independently of weipipe.reference.

  check_train.py --model NAME --onnx F.onnx --data TOK.bin --log L.jsonl --weights W.safetensors
                 --steps N --microbatches M --batch B --seq S --lr LR
                 [--lr-schedule constant|cosine --warmup-steps W --min-lr X] [--unchanged]

* the log has N steps 0..N-1 with finite loss and grad_norm, tokens = M*B*S,
  sequential windows (s*M*B .. (s+1)*M*B-1, mod the window count), and the LR
  of the documented schedule;
* the step-0 loss (every step's with --unchanged, i.e. lr 0) equals the mean
  token cross-entropy of onnxruntime's logits of the ONNX file on windows cut
  from the file with numpy (rel 1e-5);
* without --unchanged: the loss decreases on average (last < first, and the
  mean of steps 1.. < step 0);
* the safetensors has exactly the ONNX float initializers that hold parameters
  (by name, or bitwise equal to a parameter of build_model(NAME) or its
  transpose), with the initializers' shapes and dtype; with --unchanged every
  tensor is bitwise equal to the initializer, else every one changed and copies
  of one parameter (equal or transposed in the file) still agree.
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
for k in ["--model", "--onnx", "--data", "--log", "--weights"]:
    p.add_argument(k, required=True)
for k in ["--steps", "--microbatches", "--batch", "--seq"]:
    p.add_argument(k, type=int, required=True)
p.add_argument("--lr", type=float, required=True)
p.add_argument("--lr-schedule", default="constant")
p.add_argument("--warmup-steps", type=int, default=0)
p.add_argument("--min-lr", type=float, default=0.0)
p.add_argument("--unchanged", action="store_true")
a = p.parse_args()
fails = []


def fail(msg):
    fails.append(msg)
    print("FAIL:", msg)


N, M, B, S = a.steps, a.microbatches, a.batch, a.seq

# --- log
recs = [json.loads(line) for line in open(a.log)]
if [r["step"] for r in recs] != list(range(N)):
    fail(f"log steps {[r['step'] for r in recs]} != 0..{N - 1}")
tok = np.fromfile(a.data, dtype="<u2").astype(np.int64)
nwin = len(tok) // (S + 1)
for r in recs:
    s = r["step"]
    for k in ["loss", "grad_norm", "lr"]:
        if not math.isfinite(r[k]):
            fail(f"step {s}: {k} {r[k]} not finite")
    if r["tokens"] != M * B * S:
        fail(f"step {s}: tokens {r['tokens']} != {M * B * S}")
    want = [k % nwin for k in range(s * M * B, (s + 1) * M * B)]
    if r["windows"] != want:
        fail(f"step {s}: windows {r['windows']} != {want}")
    W = a.warmup_steps
    if s < W:
        lr = a.lr * (s + 1) / W
    elif a.lr_schedule == "cosine":
        lr = a.min_lr + (a.lr - a.min_lr) * 0.5 * (1 + math.cos(math.pi * (s - W) / max(1, N - W)))
    else:
        lr = a.lr
    if abs(r["lr"] - lr) > 1e-12 * max(1.0, abs(lr)):
        fail(f"step {s}: lr {r['lr']} != {lr}")
losses = [r["loss"] for r in recs]
print("losses", " ".join(f"{x:.4f}" for x in losses))

# --- loss vs onnxruntime on numpy-cut windows
so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
for s in range(N) if a.unchanged else [0]:
    ks = [k % nwin for k in range(s * M * B, (s + 1) * M * B)]
    win = np.stack([tok[k * (S + 1):(k + 1) * (S + 1)] for k in ks])
    x, y = win[:, :-1], win[:, 1:]
    feed = {}
    for i in sess.get_inputs():
        feed[i.name] = {"input_ids": x, "attention_mask": np.ones_like(x),
                        "position_ids": np.broadcast_to(np.arange(S), x.shape).copy()}[i.name]
    names = [o.name for o in sess.get_outputs()]
    lg = sess.run(["logits"], feed)[0].astype(np.float64)
    mx = lg.max(-1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(-1)) + mx[..., 0]
    ce = lse - np.take_along_axis(lg, y[..., None], -1)[..., 0]
    ref = float(ce.mean())
    if abs(losses[s] - ref) > 1e-5 * abs(ref):
        fail(f"step {s}: loss {losses[s]} != onnxruntime cross-entropy {ref}")
    else:
        print(f"step {s} loss matches onnxruntime cross-entropy (rel {abs(losses[s] - ref) / ref:.1e})")

if not a.unchanged:
    if not (losses[-1] < losses[0] and np.mean(losses[1:]) < losses[0]):
        fail(f"loss does not decrease on average: {losses}")
    else:
        print("loss decreases")

# --- saved weights vs the ONNX initializers
sys.path.insert(0, "")
from weipipe.models import build_model  # noqa: E402

model = build_model(a.model, 0)
pnames = set()
pvals = []
for n, t in model.named_parameters(remove_duplicate=False):
    pnames.add(n)
    pvals.append(t.detach().numpy())
m = onnx.load(a.onnx)
FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer if t.data_type in FLOAT}


def same(u, v):
    return u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()


def is_param(name, v):
    if name in pnames or any(name.endswith("." + q) for q in pnames):
        return True
    return any(same(v, q) or (q.ndim == 2 and same(v, np.ascontiguousarray(q.T))) for q in pvals)


expected = {n for n, v in inits.items() if is_param(n, v)}
w = load_file(a.weights)
if set(w) != expected:
    fail(f"safetensors keys differ from the parameter initializers: extra {sorted(set(w) - expected)}, "
         f"missing {sorted(expected - set(w))}")
else:
    print(f"safetensors: the {len(w)} parameter initializers of {len(inits)} float initializers")
for k in sorted(set(w) & expected):
    if w[k].shape != inits[k].shape or w[k].dtype != inits[k].dtype:
        fail(f"{k}: saved {w[k].dtype}{list(w[k].shape)} != initializer {inits[k].dtype}{list(inits[k].shape)}")
    elif a.unchanged and not same(w[k], inits[k]):
        fail(f"{k}: lr 0 but not bitwise equal to the initializer")
    elif not a.unchanged and same(w[k], inits[k]):
        fail(f"{k}: unchanged after training")
if not a.unchanged:
    keys = sorted(set(w) & expected)
    for i, k1 in enumerate(keys):
        for k2 in keys[i + 1:]:
            u, v = inits[k1], inits[k2]
            if same(u, v) and not same(w[k1], w[k2]):
                fail(f"{k1} and {k2} are copies in the file but differ after training")
            if u.ndim == 2 and same(np.ascontiguousarray(u.T), v) and not same(np.ascontiguousarray(w[k1].T), w[k2]):
                fail(f"{k1} and {k2} are transposed copies in the file but not after training")
    print("saved weights: shapes match the ONNX layout, all changed, copies consistent")
else:
    print("saved weights: bitwise equal to the ONNX initializers")
if fails:
    sys.exit(f"{len(fails)} check(s) failed")
print("OK")
