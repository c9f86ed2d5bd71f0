"""The transformers causal-LM family sweep (README.md).

Walks every ``*ForCausalLM`` of the installed ``transformers`` that builds from
a tiny config, exports it as users do, and checks that weipipe imports it,
matches onnxruntime's forward and trains like ``torch.optim.AdamW`` for ten
steps, on the trained set of tensors the module's ``parameters()`` define:

    python -m weipipe.sweep --families MistralForCausalLM,Qwen3ForCausalLM --markdown table.md
    python -m weipipe.sweep --all --jsonl sweep.jsonl --markdown sweep.md
"""
from __future__ import annotations

# The stages in the order they run. A failure in the first three is not
# weipipe's: the family has no tiny config, torch cannot export it, or
# onnxruntime disagrees with torch on torch's own export.
STAGES = ("build", "export", "ort", "compile", "forward", "train", "trained-set")
UNSUPPORTED_STAGES = ("build", "export", "ort")


def outcome(stage: str) -> str:
    """The result of a family that stopped at ``stage``."""
    return ("unsupported:" if stage in UNSUPPORTED_STAGES else "fail:") + stage
