"""A small language model built around the ONNX ops weipipe lowers to
compositions of nn ops (GatherElements, GatherND, CumSum, Softplus,
ReduceLogSumExp, a depthwise causal Conv, Pad, Clip, Einsum, ScatterND and
ScatterElements with known indices, Tile of a computed tensor, TopK), and its PyTorch twin, for checking those lowerings (forward
against onnxruntime, gradients against torch.autograd).

  composite_model.py make OUT.onnx
  composite_model.py ort OUT.onnx DATA.bin OUT.npy          logits of the first batch
  composite_model.py train OUT.onnx DATA.bin --steps N [--lr X] [--eps X] --log L.jsonl --save-weights W.safetensors

The model (vocabulary 8 = sequence length 8, so that token ids are positions):
  h  = emb[ids]                                          [2, 8, 16]
  g1 = GatherElements(h, expand(ids[..., None]), axis=1)  h[b, ids[b,s], d]   (run-time indices)
  g2 = GatherND(h, (7 - ids)[..., None], batch_dims=1)    h[b, 7 - ids[b,s]]  (run-time indices)
  g3 = GatherND(h, reversed positions, batch_dims=1)      h[b, 7 - s]         (constant indices)
  g4 = GatherND(table, [[i, i % 3] ...])                  table rows, constant indices, batch_dims 0
  pos = min(CumSum(ids > 2), 7)                           position ids that skip small ids (int64)
  g5 = GatherND(h, pos[..., None], batch_dims=1)          h[b, pos[b,s]]
  c  = CumSum(h, axis=1, reverse=1)                       suffix sums (a float gradient path)
  sp = Softplus(4 h)                                      (large arguments on both sides)
  ls = ReduceLogSumExp(4 h, axis=-1, keepdims=1)
  cv = Conv(hᵀ, convw [H, 1, 3], convb, group=H, pads=[2, 2])[..., :S]ᵀ   (Mamba's causal conv)
  sh = Pad(h, pads=[0, 1, 0, 0, -1, 0])                  h shifted one step later (negative pad crops)
  cl = Clip(cv + sh, -0.5, 0.5)
  e  = Einsum(bst,bth->bsh)(0.1 Einsum(bsh,bth->bst)(h, cl), cl) + Einsum(bsh,hk->bsk)(cl, w1)
  s1 = ScatterND(h, [[0, 1], [1, 3]], cl[0, 0:2])          rows h[0, 1], h[1, 3] replaced
  s2 = ScatterElements(h, 2 (shape [B, 1, H]), cl[:, 5:6], axis=1)   row 2 replaced
  logits = (tanh((g1 + g2 + g3) @ w1) + h + g4 + g5 + 0.25 * c + 0.1 * (sp - ls) + e
            + 0.3 (s1 + s2) + Tile(cl[..., 0:4], [1, 1, 4])
            + 0.2 Tile(TopK(h, 4).values, [1, 1, 4])) @ head
Repeated ids make the gathers' gradients sums over several reads (a scatter-add).
Training follows weipipe-run's contract: sequential windows of S+1 tokens, mean
next-token cross-entropy, torch.optim.AdamW with weight decay on matrices (two
axes longer than 1: not the conv bias).
"""
import argparse
import json

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

B, S, H, V = 2, 8, 16, 8
NAMES = ("emb", "w1", "head", "table", "convw", "convb")


def weights():
    g = torch.Generator().manual_seed(0)
    return {
        "emb": torch.randn(V, H, generator=g) * 0.5,
        "w1": torch.randn(H, H, generator=g) * 0.3,
        "head": torch.randn(H, V, generator=g) * 0.3,
        "table": torch.randn(4, 3, H, generator=g) * 0.2,
        "convw": torch.randn(H, 1, 3, generator=g) * 0.5,
        "convb": torch.randn(H, generator=g) * 0.1,
    }


def nd_index_const():
    return np.array([[[i % 4, i % 3] for i in range(S)] for _ in range(B)], dtype=np.int64)  # [B, S, 2]


def make(out):
    w = weights()
    inits = [numpy_helper.from_array(w[n].numpy(), n) for n in NAMES]
    rev = np.array([[[S - 1 - s] for s in range(S)] for _ in range(B)], dtype=np.int64)
    inits += [
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([B, S, H], dtype=np.int64), "bsh"),
        numpy_helper.from_array(np.array(S - 1, dtype=np.int64), "last"),
        numpy_helper.from_array(rev, "rev"),
        numpy_helper.from_array(nd_index_const(), "tidx"),
        numpy_helper.from_array(np.array(2, dtype=np.int64), "two"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(0.25, dtype=np.float32), "quarter"),
        numpy_helper.from_array(np.array(4.0, dtype=np.float32), "four"),
        numpy_helper.from_array(np.array(0.1, dtype=np.float32), "tenth"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([0, 0, 0], dtype=np.int64), "s0"),
        numpy_helper.from_array(np.array([B, H, S], dtype=np.int64), "s1"),
        numpy_helper.from_array(np.array([0, 1, 0, 0, -1, 0], dtype=np.int64), "shift"),
        numpy_helper.from_array(np.array(-0.5, dtype=np.float32), "lo"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "hi"),
        numpy_helper.from_array(np.array([[0, 1], [1, 3]], dtype=np.int64), "ndidx"),
        numpy_helper.from_array(np.array([0, 0, 0], dtype=np.int64), "u0"),
        numpy_helper.from_array(np.array([1, 2, H], dtype=np.int64), "u1"),
        numpy_helper.from_array(np.array([2, H], dtype=np.int64), "u2"),
        numpy_helper.from_array(np.full((B, 1, H), 2, dtype=np.int64), "elidx"),
        numpy_helper.from_array(np.array([0, 5, 0], dtype=np.int64), "w0"),
        numpy_helper.from_array(np.array([B, 6, H], dtype=np.int64), "w1e"),
        numpy_helper.from_array(np.array(0.3, dtype=np.float32), "pt3"),
        numpy_helper.from_array(np.array([B, S, 4], dtype=np.int64), "q4"),
        numpy_helper.from_array(np.array([1, 1, 4], dtype=np.int64), "reps"),
        numpy_helper.from_array(np.array([4], dtype=np.int64), "k4"),
        numpy_helper.from_array(np.array(0.2, dtype=np.float32), "pt2"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
        helper.make_node("Unsqueeze", ["input_ids", "axis2"], ["ids3"]),
        helper.make_node("Expand", ["ids3", "bsh"], ["ide"]),
        helper.make_node("GatherElements", ["h", "ide"], ["g1"], axis=1),
        helper.make_node("Sub", ["last", "input_ids"], ["flip"]),
        helper.make_node("Unsqueeze", ["flip", "axis2"], ["flip3"]),
        helper.make_node("GatherND", ["h", "flip3"], ["g2"], batch_dims=1),
        helper.make_node("GatherND", ["h", "rev"], ["g3"], batch_dims=1),
        helper.make_node("GatherND", ["table", "tidx"], ["g4"]),
        helper.make_node("Add", ["g1", "g2"], ["s12"]),
        helper.make_node("Add", ["s12", "g3"], ["s123"]),
        helper.make_node("MatMul", ["s123", "w1"], ["m"]),
        helper.make_node("Tanh", ["m"], ["t"]),
        helper.make_node("Add", ["t", "h"], ["r"]),
        helper.make_node("Add", ["r", "g4"], ["r4"]),
        helper.make_node("Greater", ["input_ids", "two"], ["big"]),
        helper.make_node("Cast", ["big"], ["big64"], to=TensorProto.INT64),
        helper.make_node("CumSum", ["big64", "axis1"], ["cnt"]),
        helper.make_node("Min", ["cnt", "last"], ["pos"]),
        helper.make_node("Unsqueeze", ["pos", "axis2"], ["pos3"]),
        helper.make_node("GatherND", ["h", "pos3"], ["g5"], batch_dims=1),
        helper.make_node("CumSum", ["h", "axis1"], ["c"], reverse=1),
        helper.make_node("Mul", ["c", "quarter"], ["cq"]),
        helper.make_node("Add", ["r4", "g5"], ["r5"]),
        helper.make_node("Add", ["r5", "cq"], ["r6"]),
        helper.make_node("Mul", ["h", "four"], ["h4"]),
        helper.make_node("Softplus", ["h4"], ["sp"]),
        helper.make_node("ReduceLogSumExp", ["h4", "last_axis"], ["ls"], keepdims=1),
        helper.make_node("Sub", ["sp", "ls"], ["spls"]),
        helper.make_node("Mul", ["spls", "tenth"], ["spt"]),
        helper.make_node("Add", ["r6", "spt"], ["z0"]),
        helper.make_node("Transpose", ["h"], ["hT"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["hT", "convw", "convb"], ["cvp"], group=H, pads=[2, 2], kernel_shape=[3]),
        helper.make_node("Slice", ["cvp", "s0", "s1"], ["cvs"]),
        helper.make_node("Transpose", ["cvs"], ["cv"], perm=[0, 2, 1]),
        helper.make_node("Pad", ["h", "shift"], ["sh"]),
        helper.make_node("Add", ["cv", "sh"], ["cvsh"]),
        helper.make_node("Clip", ["cvsh", "lo", "hi"], ["cl"]),
        helper.make_node("Einsum", ["h", "cl"], ["sc"], equation="bsh,bth->bst"),
        helper.make_node("Mul", ["sc", "tenth"], ["sct"]),
        helper.make_node("Einsum", ["sct", "cl"], ["e1"], equation="bst,bth->bsh"),
        helper.make_node("Einsum", ["cl", "w1"], ["e2"], equation="bsh,hk->bsk"),
        helper.make_node("Add", ["z0", "e1"], ["z1"]),
        helper.make_node("Add", ["z1", "e2"], ["z2"]),
        helper.make_node("Slice", ["cl", "u0", "u1"], ["ul"]),
        helper.make_node("Reshape", ["ul", "u2"], ["upd"]),
        helper.make_node("ScatterND", ["h", "ndidx", "upd"], ["sc1"]),
        helper.make_node("Slice", ["cl", "w0", "w1e"], ["upd2"]),
        helper.make_node("ScatterElements", ["h", "elidx", "upd2"], ["sc2"], axis=1),
        helper.make_node("Add", ["sc1", "sc2"], ["s12s"]),
        helper.make_node("Mul", ["s12s", "pt3"], ["s3"]),
        helper.make_node("Add", ["z2", "s3"], ["z3"]),
        helper.make_node("Slice", ["cl", "s0", "q4"], ["cl4"]),
        helper.make_node("Tile", ["cl4", "reps"], ["tl"]),
        helper.make_node("Add", ["z3", "tl"], ["z4"]),
        helper.make_node("TopK", ["h", "k4"], ["tkv", "tki"]),
        helper.make_node("Tile", ["tkv", "reps"], ["tkt"]),
        helper.make_node("Mul", ["tkt", "pt2"], ["tks"]),
        helper.make_node("Add", ["z4", "tks"], ["z"]),
        helper.make_node("MatMul", ["z", "head"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "gathers",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [B, S])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [B, S, V])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out)


def forward(p, ids):
    h = p["emb"][ids]                                                   # [B, S, H]
    idx = ids[..., None].expand(B, S, H)
    g1 = torch.gather(h, 1, idx)
    bi = torch.arange(B)[:, None]
    g2 = h[bi, (S - 1) - ids]
    g3 = h[:, torch.arange(S - 1, -1, -1)]
    t = torch.from_numpy(nd_index_const())
    g4 = p["table"][t[..., 0], t[..., 1]]
    pos = torch.clamp(torch.cumsum((ids > 2).long(), 1), max=S - 1)
    g5 = h[bi, pos]
    c = torch.flip(torch.cumsum(torch.flip(h, [1]), 1), [1])
    sp = F.softplus(4 * h)
    ls = torch.logsumexp(4 * h, dim=-1, keepdim=True)
    z = torch.tanh((g1 + g2 + g3) @ p["w1"]) + h + g4 + g5 + 0.25 * c + 0.1 * (sp - ls)
    cv = F.conv1d(h.transpose(1, 2), p["convw"], p["convb"], padding=2, groups=H)[..., :S].transpose(1, 2)
    sh = F.pad(h, (0, 0, 1, -1))
    cl = torch.clamp(cv + sh, -0.5, 0.5)
    e = torch.einsum("bst,bth->bsh", 0.1 * torch.einsum("bsh,bth->bst", h, cl), cl)
    e = e + torch.einsum("bsh,hk->bsk", cl, p["w1"])
    s1 = h.clone()
    s1[0, 1], s1[1, 3] = cl[0, 0], cl[0, 1]
    s2 = torch.scatter(h, 1, torch.full((B, 1, H), 2), cl[:, 5:6])
    tk = torch.topk(h, 4).values.repeat(1, 1, 4)
    return (z + e + 0.3 * (s1 + s2) + cl[..., 0:4].repeat(1, 1, 4) + 0.2 * tk) @ p["head"]


def batches(path, steps):
    tokens = np.fromfile(path, dtype="<u2").astype(np.int64)
    n = len(tokens) // (S + 1)
    for step in range(steps):
        rows = [tokens[(k % n) * (S + 1):(k % n + 1) * (S + 1)] for k in range(step * B, step * B + B)]
        w = torch.from_numpy(np.stack(rows))
        yield w[:, :-1], w[:, 1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "ort", "train"])
    ap.add_argument("onnx")
    ap.add_argument("data", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--log")
    ap.add_argument("--save-weights")
    a = ap.parse_args()
    if a.cmd == "make":
        return make(a.onnx)
    if a.cmd == "ort":
        import onnxruntime as ort

        x, _ = next(batches(a.data, 1))
        sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
        np.save(a.out, sess.run(None, {"input_ids": x.numpy()})[0])
        return
    p = {n: torch.nn.Parameter(v.clone()) for n, v in weights().items()}
    matrix = [q for q in p.values() if sum(d > 1 for d in q.shape) >= 2]
    vector = [q for q in p.values() if sum(d > 1 for d in q.shape) < 2]
    opt = torch.optim.AdamW([{"params": matrix, "weight_decay": 0.01}, {"params": vector, "weight_decay": 0.0}],
                            lr=a.lr, eps=a.eps, foreach=False)
    with open(a.log, "w") as log:
        for step, (x, y) in enumerate(batches(a.data, a.steps)):
            opt.zero_grad()
            logits = forward(p, x)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            loss.backward()
            gn = torch.nn.utils.get_total_norm([q.grad for q in p.values()], foreach=False)
            opt.step()
            log.write(json.dumps({"step": step, "loss": loss.item(), "grad_norm": gn.item()}) + "\n")
    from safetensors.torch import save_file

    save_file({n: q.detach().contiguous() for n, q in p.items()}, a.save_weights)


if __name__ == "__main__":
    main()
