"""Small deterministic test models for weipipe and their ONNX export.

``MODELS`` maps a model name to a :class:`ModelSpec`. Plain-PyTorch models take
``input_ids`` and return ``logits``; Hugging Face models (names ``hf-*``) take
``input_ids``, ``attention_mask``, ``position_ids`` and return ``logits`` plus
``present.N.key`` / ``present.N.value``.

    python -m weipipe.models list
    python -m weipipe.models export gpt2 -o gpt2.onnx
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "plain" or "hf"
    build: Callable[..., torch.nn.Module]
    description: str


def _plain(modname: str, fn: str = "build") -> Callable[..., torch.nn.Module]:
    def build(seed: int = 0, attn: str | None = None, layers: int | None = None) -> torch.nn.Module:
        import importlib

        if attn is not None:
            raise ValueError(f"{modname}: attention implementation is fixed (written out) for plain models")
        builder = getattr(importlib.import_module(f"{__name__}.{modname}"), fn)
        return builder(seed) if layers is None else builder(seed, layers=layers)

    return build


def _hf(fn: str) -> Callable[..., torch.nn.Module]:
    def build(seed: int = 0, attn: str | None = None, layers: int | None = None) -> torch.nn.Module:
        from . import hf

        return getattr(hf, fn)(seed, attn or "sdpa", layers)

    return build


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("gpt2", "plain", _plain("gpt2"),
                  "GPT-2 style: learned pos emb, LayerNorm, fused qkv, written-out causal attention, tanh GELU, tied head"),
        ModelSpec("gpt2-bytes", "plain", _plain("gpt2", "build_bytes"),
                  "the gpt2 architecture at byte level (vocab 256), 4 layers x 128, 128 positions: "
                  "the bundled model the README trains on English text"),
        ModelSpec("llama", "plain", _plain("llama"),
                  "Llama style: written-out RMSNorm, rotate-half RoPE, GQA 4q/2kv, SwiGLU, untied head"),
        ModelSpec("sdpa", "plain", _plain("sdpa"),
                  "causal decoder with F.scaled_dot_product_attention(is_causal=True), no position "
                  "embedding (any length): the long-context model (2 layers of width 256, 4 heads of 64)"),
        ModelSpec("paper-h1024", "plain", _plain("paper", "build_h1024"),
                  "the WeiPipe paper's LLaMA-2 model at H = 1024 (32 heads, SwiGLU 8H/3, vocab 32000, "
                  "SDPA causal, RoPE), 2 layers: --simulate-layers prices the paper's depth"),
        ModelSpec("paper-h2048", "plain", _plain("paper", "build_h2048"),
                  "the WeiPipe paper's LLaMA-2 model at H = 2048 (32 heads, SwiGLU 8H/3, vocab 32000, "
                  "SDPA causal, RoPE), 2 layers: --simulate-layers prices the paper's depth"),
        ModelSpec("paper-h4096", "plain", _plain("paper", "build_h4096"),
                  "the WeiPipe paper's LLaMA-2 model at H = 4096 (32 heads, SwiGLU 8H/3, vocab 32000, "
                  "SDPA causal, RoPE), 2 layers: --simulate-layers prices the paper's depth"),
        ModelSpec("bert", "plain", _plain("bert"),
                  "BERT style encoder: tok+pos+type emb, post-LN, bidirectional attention, erf GELU, MLM head"),
        ModelSpec("hf-gpt2", "hf", _hf("build_gpt2"),
                  "transformers GPT2LMHeadModel (tiny config, random weights), use_cache=True"),
        ModelSpec("hf-llama", "hf", _hf("build_llama"),
                  "transformers LlamaForCausalLM, GQA 4q/2kv, use_cache=True"),
        ModelSpec("hf-qwen2", "hf", _hf("build_qwen2"),
                  "transformers Qwen2ForCausalLM, qkv biases, GQA, tied head, use_cache=True"),
        ModelSpec("hf-gpt-neox", "hf", _hf("build_gpt_neox"),
                  "transformers GPTNeoXForCausalLM, partial rotary (25%), parallel residual, use_cache=True"),
    ]
}


def build_model(name: str, seed: int = 0, attn: str | None = None,
                layers: int | None = None) -> torch.nn.Module:
    """Build model ``name`` in eval mode with seeded random weights.

    ``attn`` (HF models only): transformers attention implementation, "sdpa" (default) or "eager".
    ``layers``: another number of layers than the model's own (pipeline tests; bert keeps its own).
    """
    try:
        spec = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    if layers is None:
        return spec.build(seed, attn)
    if name == "bert":
        raise ValueError("bert: --layers is not supported")
    return spec.build(seed, attn, layers)


__all__ = ["MODELS", "ModelSpec", "build_model"]
