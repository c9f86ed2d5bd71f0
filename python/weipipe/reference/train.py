"""The reference training loop (README.md: loss, optimizer, LR schedule)."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import match as M
from .data import Windows
from .errors import RefError
from .outputs import Outputs  # noqa: F401  (re-exported)

LR_SCHEDULES = ("constant", "cosine")


def log(msg: str) -> None:
    print(f"[weipipe.reference] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- model


@dataclass
class Loaded:
    name: str
    kind: str  # "plain" or "hf"
    module: torch.nn.Module
    bindings: list[M.Binding]
    inits: dict[str, np.ndarray]
    onnx_path: str
    onnx_batch: int | None
    onnx_seq: int | None

    @property
    def vocab(self) -> int:
        return int(self.module.config.vocab_size)

    @property
    def max_positions(self) -> int | None:
        cfg = self.module.config
        # learned position tables only (GPT-2's n_positions); RoPE models take any length
        return getattr(cfg, "n_positions", None)


def _input_shape(proto) -> tuple[int | None, int | None]:
    inputs = {i.name: i for i in proto.graph.input}
    i = inputs.get("input_ids")
    if i is None:
        raise RefError("the ONNX graph has no input named input_ids")
    dims = i.type.tensor_type.shape.dim
    if len(dims) != 2:
        raise RefError(f"ONNX input input_ids has rank {len(dims)}, expected [batch, seq]")
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)  # type: ignore[return-value]


def load_model(name: str, onnx_path: str, seed: int = 0, weights: str | None = None) -> Loaded:
    """build_model(name, seed), then every trainable parameter overwritten from its ONNX initializer(s)."""
    from weipipe.models import MODELS, build_model

    if name not in MODELS:
        raise RefError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    proto = M.load_onnx(onnx_path)
    torch.manual_seed(seed)
    module = build_model(name, seed)
    return from_module(name, MODELS[name].kind, module, onnx_path, proto, weights)


def from_module(name: str, kind: str, module: torch.nn.Module, onnx_path: str, proto=None,
                weights: str | None = None, found: M.Matching | None = None) -> Loaded:
    """A module built by the caller (the one the file was exported from, same values), its
    trainable parameters overwritten from the file's initializers. ``kind`` "plain": the
    module takes ``input_ids`` only; "hf": also ``attention_mask`` and ``position_ids``
    (see :func:`logits`); either way ``module.config.vocab_size`` is the vocabulary.
    ``found``: the caller's :func:`match.find` of this module and file (derived holders).
    """
    if proto is None:
        proto = M.load_onnx(onnx_path)
    module.eval()  # as exported: no dropout
    bindings, inits = M.resolve(found, onnx_path) if found else M.match(module, proto, onnx_path)
    log(M.summary(bindings, inits) + f" in {onnx_path}")
    if weights is not None:
        M.apply_weights(bindings, read_safetensors(weights), weights)
        log(f"parameters overwritten from {weights}")
    b, s = _input_shape(proto)
    return Loaded(name, kind, module, bindings, inits, onnx_path, b, s)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not os.path.exists(path):
        raise RefError(f"weights file {path}: no such file")
    try:
        return load_file(path)
    except Exception as e:  # noqa: BLE001
        raise RefError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None


def resolve_shape(m: Loaded, batch: int | None, seq: int | None) -> tuple[int, int]:
    B = batch if batch is not None else m.onnx_batch
    S = seq if seq is not None else m.onnx_seq
    if B is None:
        raise RefError(f"the batch dimension of input_ids in {m.onnx_path} is dynamic: give --batch")
    if S is None:
        raise RefError(f"the sequence dimension of input_ids in {m.onnx_path} is dynamic: give --seq")
    if B < 1 or S < 1:
        raise RefError(f"need batch >= 1 and seq >= 1, got batch {B}, seq {S}")
    if m.max_positions is not None and S > m.max_positions:
        raise RefError(f"--seq {S} exceeds the {m.name} model's {m.max_positions} learned positions")
    return B, S


def logits(m: Loaded, ids: torch.Tensor) -> torch.Tensor:
    """[B, S] int64 -> [B, S, V]; HF models get attention_mask = 1 and position_ids = arange(S)."""
    if m.kind == "hf":
        B, S = ids.shape
        out = m.module(ids, torch.ones_like(ids), torch.arange(S, dtype=torch.int64).expand(B, S))
    else:
        out = m.module(ids)
    return out[0] if isinstance(out, (tuple, list)) else out


# --------------------------------------------------------------------------- outputs


def save_weights(m: Loaded, path: str, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file(M.state_by_initializer(m.bindings), path, metadata=metadata)


# --------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    steps: int
    microbatches: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    ignore_index: int = -100


def lr_at(s: int, c: TrainConfig) -> float:
    """LR of 0-based step s (README.md, "LR schedule").

    s < W:       lr * (s + 1) / W                       (linear warm-up, W = warmup_steps)
    constant:    lr
    cosine:      min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * (s - W) / max(1, N - W)))   (N = steps)
    """
    W, N = c.warmup_steps, c.steps
    if s < W:
        return c.lr * (s + 1) / W
    if c.lr_schedule == "constant":
        return c.lr
    if c.lr_schedule == "cosine":
        p = (s - W) / max(1, N - W)
        return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
    raise RefError(f"unknown LR schedule {c.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}")


def decays(shape) -> bool:
    """Weight decay is for matrices: two or more axes longer than 1 (the artifact's rule,
    lib/Target/ArtifactWriter.cpp); a bias stored as [1, 1, N] is a vector."""
    return sum(1 for d in shape if d > 1) >= 2


def make_optimizer(m: Loaded, c: TrainConfig) -> torch.optim.AdamW:
    decay = [b.param for b in m.bindings if decays(b.param.shape)]
    no_decay = [b.param for b in m.bindings if not decays(b.param.shape)]
    groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, eps=c.eps, foreach=False)


def check_config(c: TrainConfig) -> None:
    if c.steps < 0:
        raise RefError(f"--steps must be >= 0, got {c.steps}")
    if c.microbatches < 1:
        raise RefError(f"--microbatches must be >= 1, got {c.microbatches}")
    if c.lr_schedule not in LR_SCHEDULES:
        raise RefError(f"unknown LR schedule {c.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
    for flag, v in (("--warmup-steps", c.warmup_steps), ("--grad-clip", c.grad_clip),
                    ("--lr", c.lr), ("--eps", c.eps)):
        if v < 0:
            raise RefError(f"{flag} must be >= 0, got {v:g}")
    if not all(0.0 <= x < 1.0 for x in c.betas):
        raise RefError(f"--betas must be in [0, 1), got {c.betas}")


def train(m: Loaded, windows: Windows, batch: int, c: TrainConfig, log_file=None, echo=True) -> list[dict]:
    """Run c.steps optimizer steps; returns (and writes to log_file, one JSON line each) the step records."""
    check_config(c)
    opt = make_optimizer(m, c)
    params = [b.param for b in m.bindings]
    records = []
    for s in range(c.steps):
        t0 = time.perf_counter()
        lr = lr_at(s, c)
        for g in opt.param_groups:
            g["lr"] = lr
        mbs = windows.step(s, c.microbatches, batch)
        ntok = sum(int(np.count_nonzero(y != c.ignore_index)) for _, y, _ in mbs)
        denom = max(ntok, 1)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for x, y, _ in mbs:
            lg = logits(m, torch.from_numpy(x))
            lsum = F.cross_entropy(
                lg.reshape(-1, lg.shape[-1]), torch.from_numpy(y).reshape(-1),
                ignore_index=c.ignore_index, reduction="sum",
            )
            (lsum / denom).backward()
            total += float(lsum.detach())
        loss = total / denom
        if c.grad_clip > 0:
            gn = torch.nn.utils.clip_grad_norm_(params, c.grad_clip, foreach=False)
        else:
            gn = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=False)
        opt.step()
        rec = {
            "step": s,
            "loss": loss,
            "lr": lr,
            "grad_norm": float(gn),
            "tokens": ntok,
            "windows": [w for _, _, idx in mbs for w in idx],
            "time_s": round(time.perf_counter() - t0, 4),
        }
        records.append(rec)
        if log_file is not None:
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
        if echo:
            print(f"step {s}: loss {loss:.6f} lr {lr:.6g} grad_norm {float(gn):.6g} tokens {ntok}", flush=True)
    return records
