"""Tiny Hugging Face ``transformers`` causal LMs built from config objects.

Weights are random (seeded); nothing is downloaded from a hub. Each model is
wrapped in :class:`CausalLMExportWrapper`, which is how the model is exported
for inference with a KV cache: inputs ``input_ids``, ``attention_mask``,
``position_ids``; outputs ``logits`` followed by ``present.N.key`` /
``present.N.value`` for every layer (``use_cache=True``, no past inputs).

``attn`` selects the transformers attention implementation: ``"sdpa"`` (the
transformers default; exported through aten::scaled_dot_product_attention,
which becomes the ONNX Attention op at opset 23 with dynamo) or ``"eager"``
(matmul/softmax written out; needed for the TorchScript exporter at opset 13).
"""
from __future__ import annotations

import torch
from torch import nn

# Shared tiny dims.
VOCAB = 128
HIDDEN = 64
LAYERS = 2
HEADS = 4
INTERMEDIATE = 128
MAX_POS = 64


class CausalLMExportWrapper(nn.Module):
    """Calls a HF causal LM with use_cache=True and flattens the cache.

    Returns ``(logits, present.0.key, present.0.value, present.1.key, ...)``;
    every present tensor is ``[batch, num_kv_heads, seq, head_dim]``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    def output_names(self) -> list[str]:
        names = ["logits"]
        for i in range(self.num_layers):
            names += [f"present.{i}.key", f"present.{i}.value"]
        return names

    def forward(self, input_ids, attention_mask, position_ids):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            return_dict=True,
        )
        cache = out.past_key_values
        flat = [out.logits]
        for layer in cache.layers:
            flat += [layer.keys, layer.values]
        return tuple(flat)


def _finish(model: nn.Module) -> CausalLMExportWrapper:
    # HF initialises norm weights to 1 and biases to 0. Make every 1-D parameter
    # random (norm weights in [0.5, 1.5), biases ~ N(0, 0.02)) so that each one is
    # observable in the outputs and no two parameters have equal values (the
    # TorchScript exporter merges equal-valued initializers).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim != 1:
                continue
            if name.endswith("bias"):
                p.normal_(std=0.02)
            else:
                p.uniform_(0.5, 1.5)
    model.eval()
    return CausalLMExportWrapper(model).eval()


def _decoder_sizes(attn: str, layers: int | None = None) -> dict:
    """Config keywords the Llama, Qwen2 and GPT-NeoX builders share."""
    return dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS if layers is None else layers,
        num_attention_heads=HEADS,
        max_position_embeddings=MAX_POS,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation=attn,
    )


def build_gpt2(seed: int = 0, attn: str = "sdpa", layers: int | None = None) -> CausalLMExportWrapper:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=MAX_POS,
        n_embd=HIDDEN,
        n_layer=LAYERS if layers is None else layers,
        n_head=HEADS,
        n_inner=4 * HIDDEN,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation=attn,
    )
    torch.manual_seed(seed)
    return _finish(GPT2LMHeadModel(cfg))


def build_llama(seed: int = 0, attn: str = "sdpa", layers: int | None = None) -> CausalLMExportWrapper:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        **_decoder_sizes(attn, layers),
        num_key_value_heads=2,  # GQA: 2 query heads per kv head
        tie_word_embeddings=False,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return _finish(LlamaForCausalLM(cfg))


def build_qwen2(seed: int = 0, attn: str = "sdpa", layers: int | None = None) -> CausalLMExportWrapper:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        **_decoder_sizes(attn, layers),
        num_key_value_heads=2,
        tie_word_embeddings=True,
        use_sliding_window=False,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return _finish(Qwen2ForCausalLM(cfg))


def build_gpt_neox(seed: int = 0, attn: str = "sdpa", layers: int | None = None) -> CausalLMExportWrapper:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(
        **_decoder_sizes(attn, layers),
        rotary_pct=0.25,  # partial rotary
        use_parallel_residual=True,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return _finish(GPTNeoXForCausalLM(cfg))
