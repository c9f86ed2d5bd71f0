"""Logits of an ONNX file with onnxruntime (CPU), fed like the reference feeds the module.

Graph inputs: ``input_ids`` gets the token ids; ``attention_mask`` all ones;
``position_ids`` ``arange(S)`` in every row; ``token_type_ids`` zeros. Any
other input is an error. The output named ``logits`` (else the first) is
returned.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import RefError

_NP_OF = {onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32}


def feeds(proto: onnx.ModelProto, ids: np.ndarray) -> dict[str, np.ndarray]:
    B, S = ids.shape
    init_names = {t.name for t in proto.graph.initializer}
    out = {}
    for i in proto.graph.input:
        if i.name in init_names:
            continue
        et = i.type.tensor_type.elem_type
        dt = _NP_OF.get(et)
        if dt is None:
            raise RefError(f"ONNX input {i.name} has element type {onnx.TensorProto.DataType.Name(et)}, expected int64/int32")
        if i.name == "input_ids":
            out[i.name] = ids.astype(dt)
        elif i.name == "attention_mask":
            out[i.name] = np.ones((B, S), dtype=dt)
        elif i.name == "position_ids":
            out[i.name] = np.broadcast_to(np.arange(S, dtype=dt), (B, S)).copy()
        elif i.name == "token_type_ids":
            out[i.name] = np.zeros((B, S), dtype=dt)
        else:
            raise RefError(f"ONNX input {i.name}: don't know what to feed (known: input_ids, attention_mask, "
                           "position_ids, token_type_ids)")
    if "input_ids" not in out:
        raise RefError("the ONNX graph has no input named input_ids")
    return out


def ort_logits(
    onnx_path: str,
    ids: np.ndarray,
    weights: dict[str, np.ndarray] | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Logits ``[B, S, V]`` of the ONNX file at ``onnx_path`` for ``ids [B, S]``.

    ``weights`` (``{initializer name: array}``, e.g. a saved .safetensors)
    replaces those initializers' values first.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    proto = onnx.load(onnx_path)
    if weights:
        by_name = {t.name: t for t in proto.graph.initializer}
        for k, v in weights.items():
            t = by_name.get(k)
            if t is None:
                raise RefError(f"weights: {k} is not an initializer of {onnx_path}")
            if tuple(t.dims) != tuple(v.shape):
                raise RefError(f"weights: {k} has shape {list(v.shape)}, the initializer {list(t.dims)}")
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(v), k))
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    else:
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    want = "logits" if "logits" in names else names[0]
    (logits,) = sess.run([want], feeds(proto, ids))
    return logits
