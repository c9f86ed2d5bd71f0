"""A causal decoder whose attention is ``F.scaled_dot_product_attention(is_causal=True)``.

This is how many user models write attention, and the PyTorch peer of
long-context training on the CPU (PyTorch's fused SDPA kernels). No position
embedding (NoPE), so one model exports at any sequence length: the bench's
long-context rows and the long-context tests use it. torch.onnx writes the
causal mask of every SDPA as ``Expand(1, [S, S]) -> Trilu -> Equal 0 ->
Where(-inf, 0)`` added to the scores, O(S^2) values if folded densely.

Pre-LayerNorm blocks: fused qkv projection with bias, 4 heads of 64, erf GELU
MLP (4x), untied head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SdpaConfig:
    vocab_size: int = 256
    hidden_size: int = 256
    num_heads: int = 4
    num_layers: int = 2


class Block(nn.Module):
    def __init__(self, cfg: SdpaConfig):
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_heads
        self.ln1 = nn.LayerNorm(h)
        self.qkv = nn.Linear(h, 3 * h)
        self.proj = nn.Linear(h, h)
        self.ln2 = nn.LayerNorm(h)
        self.up = nn.Linear(h, 4 * h)
        self.down = nn.Linear(4 * h, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(h, -1)
        q, k, v = (z.view(b, t, self.heads, h // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, h))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class SdpaLM(nn.Module):
    def __init__(self, cfg: SdpaConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.hidden_size)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(input_ids)
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


def build(seed: int = 0, layers: int | None = None) -> SdpaLM:
    torch.manual_seed(seed)
    m = SdpaLM(SdpaConfig() if layers is None else SdpaConfig(num_layers=layers))
    # Distinct 1-D parameters: exporters merge bitwise-equal initializers
    # (fresh LayerNorm weights of ones), which would tie them.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim == 1:
                if name.endswith("bias"):
                    p.normal_(std=0.02)
                else:
                    p.uniform_(0.5, 1.5)
    return m.eval()
