"""A small causal LM whose attention is F.scaled_dot_product_attention(is_causal=True),
as many user models write it, for long-context import checks.

  sdpa_model.py export OUT.onnx --seq S [--layers L]   torch.onnx.export (dynamo, static shapes)
  sdpa_model.py ort OUT.onnx DATA.bin OUT.npy --seq S   onnxruntime's logits of the first window

torch.onnx writes the causal mask of every SDPA as Expand(1, [S, S]) -> Trilu
-> Equal 0 -> Where(-inf, 0), added to the scores: O(S^2) if folded densely.
The data contract is weipipe-run's: window 0 of S+1 tokens, inputs = window[:-1].
"""
import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

V, H, HEADS = 256, 64, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(H)
        self.qkv = nn.Linear(H, 3 * H)
        self.o = nn.Linear(H, H)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln(x)).split(H, -1)
        q, k, v = (z.view(b, t, HEADS, H // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.o(y.transpose(1, 2).reshape(b, t, H))


class Model(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.blocks = nn.ModuleList(Block() for _ in range(layers))
        self.head = nn.Linear(H, V)

    def forward(self, ids):
        x = self.emb(ids)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["export", "ort"])
    ap.add_argument("onnx")
    ap.add_argument("data", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--layers", type=int, default=2)
    a = ap.parse_args()
    if a.cmd == "export":
        torch.manual_seed(0)
        m = Model(a.layers).eval()
        # LayerNorm weights of ones would be merged by the exporter: make them distinct.
        with torch.no_grad():
            for p in m.parameters():
                if p.ndim == 1:
                    p.uniform_(0.5, 1.5)
        prog = torch.onnx.export(m, (torch.zeros(1, a.seq, dtype=torch.int64),), dynamo=True)
        prog.save(a.onnx)
        return
    import onnxruntime as ort

    tokens = np.fromfile(a.data, dtype="<u2").astype(np.int64)
    x = tokens[: a.seq][None, :]
    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    np.save(a.out, sess.run(None, {sess.get_inputs()[0].name: x})[0])


if __name__ == "__main__":
    main()
