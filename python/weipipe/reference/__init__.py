"""Independent PyTorch reference trainer for weipipe (see README.md).

Rebuilds the model an ONNX file was exported from (``weipipe.models.build_model``),
loads the file's initializers back into its parameters, and trains it with
``torch.optim.AdamW`` on a token file, under the same contract as ``weipipe-run``:

    python -m weipipe.reference train --model gpt2 --onnx gpt2.onnx --data tok.bin --steps 10 \\
        --batch 2 --seq 16 --log log.jsonl --save-weights out.safetensors
    python -m weipipe.reference forward --model gpt2 --onnx gpt2.onnx --data tok.bin --out logits.npy \\
        --batch 2 --seq 16 [--engine onnxruntime]
    python -m weipipe.reference batches --data tok.bin --vocab 96 --batch 2 --seq 16 --steps 3 --out b.npz
"""
from __future__ import annotations

from .data import TokenFile, Windows, load_tokens
from .errors import RefError

__all__ = ["RefError", "TokenFile", "Windows", "load_tokens"]
