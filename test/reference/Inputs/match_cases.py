"""Unit cases of weipipe.reference.match on hand-built modules and initializer lists.

Prints one line per case (FileCheck'd by match.test); exits 1 on a wrong outcome.
"""
import sys

import numpy as np
import torch
from onnx import helper, numpy_helper
from torch import nn

from weipipe.reference.errors import RefError
from weipipe.reference.match import apply_weights, match, state_by_initializer

bad = 0


def proto(inits):
    ts = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in inits.items()]
    return helper.make_model(helper.make_graph([], "g", [], [], initializer=ts))


def arr(m, n, seed):
    return np.random.default_rng(seed).standard_normal((m, n)).astype(np.float32) if n else \
        np.random.default_rng(seed).standard_normal(m).astype(np.float32)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.emb.weight
        self.norm = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 3)


def case(title, fn, expect_error=None):
    global bad
    try:
        out = fn()
    except RefError as e:
        msg = str(e).replace("\n", " | ")
        ok = expect_error is not None and all(s in msg for s in expect_error)
        print(f"{title}: {'ok' if ok else 'WRONG'}: error: {msg}")
        bad += not ok
        return
    ok = expect_error is None
    print(f"{title}: {'ok' if ok else 'WRONG (no error)'}: {out}")
    bad += not ok


def holders(bs):
    return "; ".join(f"{b.name} <- " + ", ".join(f"{h.name}({h.how}{',T' if h.transposed else ''})" for h in b.holders)
                     for b in bs)


torch.manual_seed(0)
m = Tied()
p = {n: t.detach().numpy().copy() for n, t in m.named_parameters()}


def tied():
    # prefixed names, a transposed copy of the tied weight, a same-layout copy of
    # proj.weight under another name, a constant that is no parameter
    inits = {
        "model.emb.weight": p["emb.weight"] + 1,  # by name: the file's value wins
        "val_7": (p["emb.weight"] + 1).T,  # transposed copy of the file's value
        "model.norm.weight": p["norm.weight"], "model.norm.bias": p["norm.bias"],
        "val_3": p["proj.weight"].T, "proj.bias": p["proj.bias"],
        "const": np.ones(4, np.float32) * 3,
    }
    bs, _ = match(m, proto(inits))
    st = state_by_initializer(bs)
    assert np.array_equal(m.emb.weight.detach().numpy(), p["emb.weight"] + 1)
    assert np.array_equal(st["val_7"].numpy(), (p["emb.weight"] + 1).T) and "const" not in st
    return holders(bs)


case("tied+prefix", tied)


def unmatched():
    inits = {"emb.weight": p["emb.weight"], "norm.weight": p["norm.weight"], "norm.bias": p["norm.bias"],
             "val_3": p["proj.weight"].T + 1}
    match(Tied(), proto(inits))


torch.manual_seed(0)
case("unmatched", unmatched, ["2 of 5 trainable parameters have no ONNX initializer",
                             "unmatched parameter proj.weight [3,4]", "unmatched parameter proj.bias [3]"])


class Twins(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.ones(3, 2))
        self.b = nn.Parameter(torch.ones(3, 2))


case("ambiguous", lambda: match(Twins(), proto({"val_1": np.ones((2, 3), np.float32)})),
     ["initializer val_1 [2,3] is bitwise equal to 2 parameters: a (transposed), b (transposed)"])


def disagree():
    inits = {"emb.weight": p["emb.weight"], "head.weight": p["emb.weight"] * 2,
             "norm.weight": p["norm.weight"], "norm.bias": p["norm.bias"],
             "proj.weight": p["proj.weight"], "proj.bias": p["proj.bias"]}
    torch.manual_seed(0)
    match(Tied(), proto(inits))


case("disagree", disagree, ["parameter emb.weight: initializers emb.weight and head.weight", "values differ"])


class Sym(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, 2.0], [2.0, 3.0]]))


case("symmetric", lambda: holders(match(Sym(), proto({"val_0": np.array([[1, 2], [2, 3]], np.float32)}))[0]))


def wrong_shape_name():
    # a name that matches but with the transposed shape: falls back to value matching
    torch.manual_seed(0)
    mm = Tied()
    inits = {"emb.weight": p["emb.weight"], "norm.weight": p["norm.weight"], "norm.bias": p["norm.bias"],
             "proj.weight": p["proj.weight"].T.copy(), "proj.bias": p["proj.bias"]}
    return holders(match(mm, proto(inits))[0])


case("name-with-transposed-shape", wrong_shape_name)


def weights_unknown():
    torch.manual_seed(0)
    mm = Tied()
    inits = {"emb.weight": p["emb.weight"], "norm.weight": p["norm.weight"], "norm.bias": p["norm.bias"],
             "proj.weight": p["proj.weight"], "proj.bias": p["proj.bias"]}
    bs, _ = match(mm, proto(inits))
    apply_weights(bs, {"const": np.zeros(4, np.float32)}, "w.safetensors")


case("weights-unknown", weights_unknown, ["w.safetensors: 1 tensor(s) are not ONNX initializers that hold a parameter: const"])
sys.exit(1 if bad else 0)
