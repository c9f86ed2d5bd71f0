"""Writes small ONNX models whose initializers are tied in the ways exporters
tie them, for nn-tie-parameters.test:

  tied.onnx      emb [128, 64] and head [64, 128] = emb transposed, plus a
                 bias-like [64] equal to another [64] (same-shape tie), an
                 unrelated [64, 128] that differs from emb's transpose in one
                 element, and two freshly initialized norm scales of ones
                 (equal, but separate parameters in PyTorch: never tied).
                 emb's row 0 is zero, as a Hugging Face padding row is, so
                 that the first column of the transposed head is zero: a
                 sampler that reads only that column takes it for a constant.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
rng = np.random.default_rng(0)
emb = rng.standard_normal((128, 64)).astype(np.float32)
emb[0] = 0  # the padding row
head = np.ascontiguousarray(emb.T)
near = head.copy()
near[33, 77] = np.nextafter(near[33, 77], np.float32(10))  # one ulp away
g1 = rng.standard_normal(64).astype(np.float32)
g2 = g1.copy()
ones1 = np.ones(64, np.float32)
ones2 = np.ones(64, np.float32)

inits = [numpy_helper.from_array(a, n) for a, n in
         [(emb, "emb.weight"), (head, "val_7"), (near, "other.weight"),
          (g1, "norm1.weight"), (g2, "norm2.weight"),
          (ones1, "ln_a.weight"), (ones2, "ln_b.weight")]]
nodes = [
    helper.make_node("Gather", ["emb.weight", "ids"], ["e"]),
    helper.make_node("Mul", ["e", "norm1.weight"], ["n1"]),
    helper.make_node("Mul", ["n1", "norm2.weight"], ["n1b"]),
    helper.make_node("Mul", ["n1b", "ln_a.weight"], ["n1c"]),
    helper.make_node("Mul", ["n1c", "ln_b.weight"], ["n2"]),
    helper.make_node("MatMul", ["n2", "val_7"], ["logits"]),
    helper.make_node("MatMul", ["n2", "other.weight"], ["other"]),
]
graph = helper.make_graph(
    nodes, "tied",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 3, 128]),
     helper.make_tensor_value_info("other", TensorProto.FLOAT, [2, 3, 128])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
onnx.save(model, out)
