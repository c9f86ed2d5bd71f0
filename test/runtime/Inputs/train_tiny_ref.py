"""train_tiny_ref.py DIR --data FILE --batch B --seq S [--microbatches M] [training options]

Re-run in PyTorch what `weipipe-run DIR/tiny.wpp` did with the same options
(weipipe-data --write-tiny-artifact's model: logits = emb[ids] @ w.T + bias,
initial values from DIR/init.safetensors) under the reference trainer's
contract: its data order (weipipe.reference.data), its lr_at, torch AdamW
with weight decay on the 2-D parameters only, clip_grad_norm_ /
get_total_norm, the step loss as the mean over the step's tokens. Then check
DIR/logits.npy (step 0's first micro-batch, before training), every line of
DIR/run.jsonl (lr, windows and tokens exactly; loss and grad_norm to 1e-5) and
DIR/out.safetensors (every tensor and alias to 1e-5, metadata).
"""
import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file

from weipipe.reference.data import Windows, load_tokens
from weipipe.reference.train import TrainConfig, lr_at

p = argparse.ArgumentParser()
p.add_argument("dir")
p.add_argument("--data", required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--seq", type=int, required=True)
p.add_argument("--microbatches", type=int, default=1)
p.add_argument("--steps", type=int, required=True)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--weight-decay", type=float, default=0.01)
p.add_argument("--betas", default="0.9,0.999")
p.add_argument("--eps", type=float, default=1e-8)
p.add_argument("--grad-clip", type=float, default=0.0)
p.add_argument("--warmup-steps", type=int, default=0)
p.add_argument("--lr-schedule", default="constant")
p.add_argument("--min-lr", type=float, default=0.0)
p.add_argument("--data-order", default="sequential")
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
TOL = 1e-5
torch.set_num_threads(1)
B, S, M = a.batch, a.seq, a.microbatches
betas = tuple(float(x) for x in a.betas.split(","))
cfg = TrainConfig(steps=a.steps, microbatches=M, lr=a.lr, weight_decay=a.weight_decay, betas=betas, eps=a.eps,
                  grad_clip=a.grad_clip, warmup_steps=a.warmup_steps, lr_schedule=a.lr_schedule, min_lr=a.min_lr)
init = load_file(f"{a.dir}/init.safetensors")
emb, w, b = (torch.nn.Parameter(torch.from_numpy(init[k].copy())) for k in ("emb", "w", "bias"))
V = emb.shape[0]
params = [emb, w, b]
opt = torch.optim.AdamW([{"params": [emb, w], "weight_decay": cfg.weight_decay},
                         {"params": [b], "weight_decay": 0.0}], lr=cfg.lr, betas=betas, eps=cfg.eps, foreach=False)
win = Windows(load_tokens(a.data, V), S, a.data_order, a.seed)
fails = []


def rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)) if want.size else 0.0


def logits(x):
    return F.linear(emb[torch.from_numpy(x)], w, b)


x0, _, _ = win.batch(0, B)
with torch.no_grad():
    want0 = logits(x0).numpy()
got0 = np.load(f"{a.dir}/logits.npy")
if got0.dtype != np.float32 or got0.shape != (B, S, V) or rel(got0, want0) > TOL:
    fails.append(f"logits: {got0.dtype} {got0.shape}, rel {rel(got0, want0):.3g}")

log = [json.loads(line) for line in open(f"{a.dir}/run.jsonl")]
if len(log) != cfg.steps:
    fails.append(f"log has {len(log)} lines, not {cfg.steps}")
worst = 0.0
for s, r in zip(range(cfg.steps), log):
    lr = lr_at(s, cfg)
    for g in opt.param_groups:
        g["lr"] = lr
    mbs = win.step(s, M, B)
    ntok = sum(y.size for _, y, _ in mbs)
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for x, y, _ in mbs:
        lg = logits(x)
        lsum = F.cross_entropy(lg.reshape(-1, V), torch.from_numpy(y).reshape(-1), reduction="sum")
        (lsum / ntok).backward()
        total += float(lsum.detach())
    loss = total / ntok
    if cfg.grad_clip > 0:
        gn = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=False))
    else:
        gn = float(torch.nn.utils.get_total_norm([q.grad for q in params], foreach=False))
    opt.step()
    windows = [i for _, _, idx in mbs for i in idx]
    if r["step"] != s or r["lr"] != lr or r["windows"] != windows or r["tokens"] != ntok:
        fails.append(f"step {s}: {r} vs lr {lr}, windows {windows}, tokens {ntok}")
    for key in ("time_s", "ms", "tokens_per_s"):
        if not isinstance(r.get(key), float):
            fails.append(f"step {s}: {key} missing")
    worst = max(worst, abs(r["loss"] - loss) / abs(loss), abs(r["grad_norm"] - gn) / abs(gn))
if worst > TOL:
    fails.append(f"loss/grad_norm rel {worst:.3g}")

out = load_file(f"{a.dir}/out.safetensors")
want = {"emb": emb, "lm_head.weight": emb, "w": w, "w_T": w.T, "bias": b}
if sorted(out) != sorted(want):
    fails.append(f"saved tensors {sorted(out)}")
for k, t in want.items():
    t = t.detach().numpy()
    if k in out and (out[k].shape != t.shape or rel(out[k], t) > TOL):
        fails.append(f"{k}: {out[k].shape} rel {rel(out[k], t):.3g}")
with safe_open(f"{a.dir}/out.safetensors", "numpy") as f:
    meta = json.loads(f.metadata()["weipipe.run"])
if meta["steps"] != cfg.steps or meta["lr"] != cfg.lr or meta["data_order"] != a.data_order:
    fails.append(f"metadata {meta}")
if fails:
    sys.exit("FAIL: " + "; ".join(fails))
print(f"logits [{B}, {S}, {V}] of windows 0..{B - 1}, {cfg.steps} steps x {M} x {B} rows "
      f"(lr, windows, tokens exact; loss, grad_norm within {TOL:g}) and {len(out)} saved tensors "
      f"match PyTorch")
