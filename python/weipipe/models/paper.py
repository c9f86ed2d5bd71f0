"""The WeiPipe paper's model (PPoPP 2025, §6): LLaMA-2 style at the widths of its tables.

As the authors' ``model.py`` builds it: RMSNorm, rotary position embedding (here in the
rotate-half form), 32 heads with ``F.scaled_dot_product_attention(is_causal=True)`` (flash
attention on the GPU), a SwiGLU MLP whose hidden size is 8H/3 rounded up to a multiple of
256, vocabulary 32000, untied head. Exported with two layers: the simulator prices a model of
the paper's depth (``weipipe-opt --simulate-layers``) from them, since 32 layers at H = 4096
(6.7 B parameters) are too big to export or compile on a small machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .llama import RMSNorm, Rotary, rotate_half


def ffn_size(hidden: int, multiple_of: int = 256) -> int:
    h = int(2 * (4 * hidden) / 3)
    return multiple_of * ((h + multiple_of - 1) // multiple_of)


@dataclass
class PaperConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_norm = RMSNorm(hidden, 1e-5)
        self.wq = nn.Linear(hidden, hidden, bias=False)
        self.wk = nn.Linear(hidden, hidden, bias=False)
        self.wv = nn.Linear(hidden, hidden, bias=False)
        self.wo = nn.Linear(hidden, hidden, bias=False)
        self.ffn_norm = RMSNorm(hidden, 1e-5)
        f = ffn_size(hidden)
        self.w1 = nn.Linear(hidden, f, bias=False)
        self.w3 = nn.Linear(hidden, f, bias=False)
        self.w2 = nn.Linear(f, hidden, bias=False)

    def forward(self, x, cos, sin):
        b, t, h = x.shape
        y = self.attention_norm(x)
        q, k, v = (w(y).view(b, t, self.heads, h // self.heads).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, h))
        y = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(y)) * self.w3(y))


class PaperLlama(nn.Module):
    def __init__(self, hidden: int, layers: int = 2, heads: int = 32, vocab: int = 32000):
        super().__init__()
        self.config = PaperConfig(hidden, layers, heads, vocab)
        self.tok_embeddings = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Block(hidden, heads) for _ in range(layers))
        self.norm = RMSNorm(hidden, 1e-5)
        self.rotary = Rotary(hidden // heads, 10000.0)
        self.output = nn.Linear(hidden, vocab, bias=False)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.ndim == 1:  # distinct norm scales: exporters merge equal ones
                    p.uniform_(0.5, 1.5)
                else:
                    p.normal_(std=0.02)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings(input_ids)
        cos, sin = self.rotary(input_ids.shape[1], input_ids.device)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.output(self.norm(x))


def builder(hidden: int):
    def build(seed: int = 0, layers: int | None = None) -> PaperLlama:
        torch.manual_seed(seed)
        return PaperLlama(hidden, 2 if layers is None else layers).eval()

    return build


build_h1024 = builder(1024)
build_h2048 = builder(2048)
build_h4096 = builder(4096)
