"""The ``*ForCausalLM`` families of the installed ``transformers`` and their tiny builds.

A family is a model class name (``MistralForCausalLM``). :func:`build` makes its
default config tiny by overriding only the attributes that config has, builds
the model with seeded random weights, in eval mode and fp32, with the attention
implementation transformers picks by default (eager when the family refuses
that), and wraps it the way a user exports a causal LM for training:
``input_ids`` in, logits out, no cache.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

VOCAB = 128
SEED = 0

# Tiny sizes under every name the configs use for them (GPT-style aliases
# included). Only attributes the family's default config has are passed.
TINY: dict[str, int] = {
    "vocab_size": VOCAB, "vocab_size_per_layer_input": VOCAB,
    # width
    "hidden_size": 64, "n_embd": 64, "d_model": 64, "word_embed_proj_dim": 64,
    # MLP width
    "intermediate_size": 128, "n_inner": 128, "ffn_dim": 128, "ffn_hidden_size": 128,
    "decoder_ffn_dim": 128, "encoder_ffn_dim": 128, "intermediate_size_mlp": 128,
    "dense_intermediate_size": 128,
    # depth
    "num_hidden_layers": 2, "n_layer": 2, "num_layers": 2, "n_layers": 2,
    "decoder_layers": 2, "encoder_layers": 2,
    # heads
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4,
    "decoder_attention_heads": 4, "encoder_attention_heads": 4,
    "num_key_value_heads": 2, "num_kv_heads": 2,
    "head_dim": 16, "kv_channels": 16,
    "rotary_dim": 8,  # GPT-J / CodeGen partial rotary: must fit in head_dim
    # positions (>= 64: the sweep's sequences are 16)
    "max_position_embeddings": 64, "n_positions": 64, "n_ctx": 64, "max_seq_len": 64,
    "max_target_positions": 64, "original_max_position_embeddings": 64,
    # mixture of experts and multi-head latent attention: keep the feature, shrink it
    # (the defaults mean millions of parameters per layer and minutes of export)
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "moe_num_experts": 4,
    "num_experts_per_tok": 2, "moe_intermediate_size": 32, "expert_ffn_hidden_size": 32,
    "shared_expert_intermediate_size": 32, "first_k_dense_replace": 1,
    "n_group": 1, "topk_group": 1,
    "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 16,
    "v_head_dim": 16,
}

# Special-token ids a config may hold (any attribute named *_token_id or
# *_token_ids); those outside the tiny vocabulary become 0 (data never holds 0).
SPECIAL_TOKEN_SUFFIXES = ("_token_id", "_token_ids")


class BuildError(Exception):
    """The family has no tiny build (reason in the message)."""


def all_families() -> list[str]:
    """Every ``*ForCausalLM`` class the installed transformers exports, sorted."""
    import transformers

    return sorted(
        n for n in dir(transformers)
        if n.endswith("ForCausalLM") and not n.startswith("Auto")
    )


def config_class(model_cls: type) -> type:
    """The model class's ``config_class``, else the CONFIG_MAPPING entry of its
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES model type."""
    cc = getattr(model_cls, "config_class", None)
    if cc is not None:
        return cc
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    for model_type, cls_name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items():
        if cls_name == model_cls.__name__:
            return CONFIG_MAPPING[model_type]
    raise BuildError(f"{model_cls.__name__} has no config_class and no MODEL_FOR_CAUSAL_LM_MAPPING entry")


def _fix_token_id(v, vocab: int):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return v if 0 <= v < vocab else 0
    if isinstance(v, (list, tuple)):
        return type(v)(_fix_token_id(x, vocab) for x in v)
    return v


DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")


def _has(cfg, key: str) -> bool:
    """The config has ``key`` as a field of its own: not a read-only derived property.
    Heterogeneous configs refuse global reads of per-layer fields; those are fields too."""
    if isinstance(getattr(type(cfg), key, None), property):
        return False
    try:
        getattr(cfg, key)
    except AttributeError:
        return False
    except Exception:  # noqa: BLE001  (AmbiguousGlobalPerLayerAttributeError)
        return True
    return True


def _get(cfg, key: str, default=None):
    try:
        return getattr(cfg, key)
    except Exception:  # noqa: BLE001
        return default


def tiny_overrides(default) -> dict:
    """The TINY sizes the default config has, its per-layer lists cut to the new depth,
    and its special-token ids moved into the vocabulary."""
    over = {k: v for k, v in TINY.items() if _has(default, k)}
    vocab = over.get("vocab_size", _get(default, "vocab_size", VOCAB))
    depth = next((_get(default, k) for k in DEPTH_KEYS if isinstance(_get(default, k), int)), None)
    tiny_depth = next((over[k] for k in DEPTH_KEYS if k in over), None)
    for k in dir(default):
        if k.startswith("_") or k in over or not _has(default, k):
            continue
        v = _get(default, k)
        if k.endswith(SPECIAL_TOKEN_SUFFIXES):
            fixed = _fix_token_id(v, vocab)
            if fixed != v:
                over[k] = fixed
        elif isinstance(v, (list, tuple)) and depth and tiny_depth and len(v) == depth > tiny_depth:
            over[k] = type(v)(v[:tiny_depth])  # one entry per layer (layer_types, ...)
    return over


class LogitsOnly(nn.Module):
    """What a user exports to train a causal LM: ``forward(input_ids)`` returns the logits."""

    def __init__(self, model: nn.Module, use_cache_arg: bool = True):
        super().__init__()
        self.model = model
        self.config = model.config
        self.use_cache_arg = use_cache_arg

    def forward(self, input_ids):
        if self.use_cache_arg:
            return self.model(input_ids=input_ids, use_cache=False).logits
        return self.model(input_ids=input_ids).logits


@dataclass
class Built:
    family: str
    module: LogitsOnly
    config_class: str
    overrides: dict
    attn: str | None  # the attention implementation in use
    notes: list[str] = field(default_factory=list)
    logits: np.ndarray | None = None  # torch's on the probe ids

    @property
    def vocab(self) -> int:
        return int(self.module.config.vocab_size)

    def padding_ids(self) -> set[int]:
        """Ids whose embedding row PyTorch never updates (``padding_idx``): kept out of the data."""
        return {m.padding_idx for m in self.module.modules()
                if isinstance(m, nn.Embedding) and m.padding_idx is not None}


def first_line(e: BaseException, cause: bool = False) -> str:
    """``Type: first line`` of the message, with the next line when the first only introduces
    it; with ``cause``, also the cause's (torch.onnx wraps the error that matters)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # torch.onnx colours its messages
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if msg.endswith(":") and len(lines) > 1:
        msg += " " + lines[1]
    # torch.fx node dumps: "%name : [num_users=1] = call_function[target=OP](args = (...), kwargs = {})"
    msg = re.sub(r" : \[num_users=\d+\] = \w+\[target=([^\]]+)\]\(args = .*?, kwargs = \{.*?\}\)", r" (\1)", msg)
    msg = msg.replace(" See the stack trace for more information.", "")
    step = re.search(r"This is step (\d/\d) of exporting", msg)
    if step:  # torch.onnx's wrapper: the rest is advice, the cause says what failed
        head = re.split(r"[.]\s", msg)[0]
        msg = f"{head} (export step {step.group(1)})"
    msg = f"{type(e).__name__}: {msg}".strip()
    inner = (e.__cause__ or e.__context__) if cause else None
    if inner is not None:
        more = first_line(inner)
        if more not in msg:
            msg += f" <- {more}"
    return msg[:500]


def _distinct_values(model: nn.Module) -> list[str]:
    """Add N(0, 0.02) noise to every parameter (of any rank) that still holds one value
    everywhere or equals another bitwise (zero-initialised gates, per-layer copies of a
    constant init): for the reason _finish randomises 1-D ones, the exporter would merge them."""
    seen: set[bytes] = set()
    changed = []
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            key = bytes(str(tuple(p.shape)), "ascii") + flat.numpy().tobytes()
            if key in seen or (flat.numel() > 1 and bool((flat == flat[0]).all())):
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.02)
                changed.append(name)
                key = bytes(str(tuple(p.shape)), "ascii") + p.detach().reshape(-1).numpy().tobytes()
            seen.add(key)
    return changed


def build(family: str, probe_ids: torch.Tensor, seed: int = SEED, experts: str | None = None) -> Built:
    """Build ``family`` tiny, seeded, eval, fp32, and run it on ``probe_ids``. Raises BuildError.

    Families without grouped-query attention (multi-head latent attention, ...) may refuse
    fewer key/value heads than query heads: then the heads are made equal, with a note.
    ``experts``: the mixture-of-experts implementation (transformers' ``experts_implementation``;
    None: its default, ``grouped_mm``, which torch.onnx cannot export)."""
    import transformers

    model_cls = getattr(transformers, family, None)
    if model_cls is None:
        raise BuildError(f"transformers {transformers.__version__} has no class {family}")
    cc = config_class(model_cls)
    try:
        over = tiny_overrides(cc())
    except Exception as e:  # noqa: BLE001
        raise BuildError(f"{cc.__name__}: {first_line(e)}") from e
    if experts is not None:
        over["experts_implementation"] = experts
    try:
        return _build(family, model_cls, cc, over, probe_ids, seed)
    except BuildError as e:
        kv = next((k for k in ("num_key_value_heads", "num_kv_heads") if k in over), None)
        heads = over.get("num_attention_heads", over.get("n_head"))
        if kv is None or heads is None:
            raise
        try:
            built = _build(family, model_cls, cc, dict(over, **{kv: heads}), probe_ids, seed)
        except BuildError:
            raise e from None
        built.notes.append(f"{kv} = {heads}: {kv} 2 fails ({e})")
        return built


def _build(family: str, model_cls: type, cc: type, over: dict, probe_ids: torch.Tensor, seed: int) -> Built:
    from weipipe.models.hf import _finish

    try:
        cfg = cc(**over)
    except Exception as e:  # noqa: BLE001
        raise BuildError(f"{cc.__name__}: {first_line(e)}") from e
    notes = []
    torch.manual_seed(seed)
    try:
        model = model_cls(cfg)
    except Exception as e:  # noqa: BLE001  (e.g. "does not support sdpa"): retry eager
        first = first_line(e)
        cfg = cc(**over, attn_implementation="eager")
        torch.manual_seed(seed)
        try:
            model = model_cls(cfg)
        except Exception as e2:  # noqa: BLE001
            raise BuildError(f"{model_cls.__name__}({cc.__name__}): {first}"
                             + ("" if first_line(e2) == first else f"; eager: {first_line(e2)}")) from e2
        notes.append(f"default attention refused ({first}); eager")
    model = model.float()
    # HF initialises norm weights to 1 and biases to 0; exporters merge bitwise-equal
    # initializers, which would tie parameters that PyTorch trains separately. _finish
    # randomises every 1-D parameter (norm weights U[0.5, 1.5), biases N(0, 0.02)) and
    # sets eval mode: the test models' convention, reused so that both agree.
    model = _finish(model).model
    perturbed = _distinct_values(model)
    if perturbed:
        notes.append(f"perturbed {len(perturbed)} parameter(s) that held one value or equalled another")
    params = inspect.signature(model.forward).parameters
    use_cache_arg = "use_cache" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    if not use_cache_arg:
        notes.append("forward takes no use_cache")
    module = LogitsOnly(model, use_cache_arg).eval()
    with torch.no_grad():
        try:  # a tiny config the model cannot run is the build's failure, not the export's
            logits = module(probe_ids)
        except Exception as e:  # noqa: BLE001
            raise BuildError(f"torch forward fails: {first_line(e)}") from e
    attn = getattr(model.config, "_attn_implementation", None)
    return Built(family, module, cc.__name__, over, attn, notes, logits.numpy())
