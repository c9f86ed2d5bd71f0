"""Export the test models to ONNX the way users do, then verify.

Two exporters:

* ``dynamo``      -> ``torch.onnx.export(..., dynamo=True)`` (torch's default)
* ``torchscript`` -> ``torch.onnx.export(..., dynamo=False)``

Each exporter emits a range of opsets directly (:data:`NATIVE_OPSETS`). A
requested opset outside that range is exported at the nearest opset the
exporter supports and converted with ``onnx.version_converter.convert_version``;
what happened is reported on stderr.
"""
from __future__ import annotations

import copy
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
import torch

from . import MODELS, build_model

# torch 2.15: torchlib is implemented at opset 18 (lower requests are converted
# internally); torch.onnx._constants.ONNX_MAX_OPSET is 23; the dynamo default
# (opset_version=None) is torch.onnx._constants.ONNX_DEFAULT_OPSET == 20.
# The TorchScript exporter supports 7..20 (ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET).
NATIVE_OPSETS: dict[str, range] = {
    "dynamo": range(18, 24),
    "torchscript": range(7, 21),
}
EXPORTERS = tuple(NATIVE_OPSETS)

VERIFY_RTOL = 1e-4


def default_opset(exporter: str) -> int:
    from torch.onnx import _constants

    # Both exporters default to ONNX_DEFAULT_OPSET when opset_version is None.
    return _constants.ONNX_DEFAULT_OPSET


def _log(msg: str) -> None:
    print(f"[weipipe.models] {msg}", file=sys.stderr, flush=True)


class ExportError(RuntimeError):
    pass


class VerificationError(RuntimeError):
    pass


# --------------------------------------------------------------------------- inputs


def vocab_size(model: torch.nn.Module) -> int:
    return int(model.config.vocab_size)


def make_inputs(
    name: str, model: torch.nn.Module, batch: int, seq: int, seed: int = 0, left_pad: int = 0
) -> dict[str, torch.Tensor]:
    """Inputs in forward() order. HF models also get attention_mask/position_ids.

    ``left_pad`` (HF models): the first row gets that many left-padding positions
    (attention_mask 0, position_ids counting from the first real token).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size(model), (batch, seq), generator=g, dtype=torch.int64)
    if MODELS[name].kind == "plain":
        return {"input_ids": ids}
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[0, :left_pad] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


def output_names(name: str, model: torch.nn.Module) -> list[str]:
    if MODELS[name].kind == "plain":
        return ["logits"]
    return model.output_names()


# --------------------------------------------------------------------------- export


def export_native(
    name: str,
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    exporter: str,
    opset: int | None,
    fold: bool = True,
) -> onnx.ModelProto:
    """Run one exporter at an opset it supports (None = its default). Weights inline.

    ``fold=True`` is what users get by default (dynamo ``optimize=True``,
    torchscript ``do_constant_folding=True``): Linear weights are folded into
    pre-transposed initializers with generated names, and a tied LM head gets
    its own transposed copy. ``fold=False`` keeps every parameter as an
    initializer under its PyTorch name, used through Transpose nodes.
    """
    in_names = list(inputs)
    out_names = output_names(name, model)
    args = tuple(inputs.values())
    if exporter == "dynamo":
        dyn = {k: {0: "batch", 1: "seq"} for k in in_names}
        prog = torch.onnx.export(
            model,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=in_names,
            output_names=out_names,
            dynamic_shapes=dyn,
            optimize=fold,
        )
        return prog.model_proto
    if exporter == "torchscript":
        dyn_axes = {k: {0: "batch", 1: "seq"} for k in in_names}
        dyn_axes["logits"] = {0: "batch", 1: "seq"}
        for o in out_names[1:]:
            dyn_axes[o] = {0: "batch", 2: "seq"}
        buf = io.BytesIO()
        torch.onnx.export(
            model,
            args,
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=in_names,
            output_names=out_names,
            dynamic_axes=dyn_axes,
            do_constant_folding=fold,
        )
        return onnx.load_from_string(buf.getvalue())
    raise ValueError(f"unknown exporter {exporter!r}; choose from {EXPORTERS}")


def model_opset(proto: onnx.ModelProto) -> int:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ExportError("model has no default-domain opset import")


def nearest_native(exporter: str, opset: int) -> int:
    r = NATIVE_OPSETS[exporter]
    return min(max(opset, r.start), r.stop - 1)


_REDUCE_OPS = {
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
}


def _fix_downconverted(proto: onnx.ModelProto, target: int) -> list[str]:
    """Repair what onnx.version_converter (onnx 1.23) leaves invalid when going below 18.

    Its Reduce* 18 -> 17 adapter moves the ``axes`` input to an attribute but keeps
    ``noop_with_empty_axes``, which only exists from opset 18 (ReduceSum: 13) on, so
    onnx.checker rejects the model. With non-empty ``axes`` (or the default 0) the
    attribute has no effect, so it is dropped.
    """
    fixes = []
    graphs = [proto.graph] + [f for f in proto.functions]
    for g in graphs:
        for n in g.node:
            if n.domain not in ("", "ai.onnx") or n.op_type not in _REDUCE_OPS:
                continue
            limit = 13 if n.op_type == "ReduceSum" else 18
            if target >= limit:
                continue
            attrs = {a.name: a for a in n.attribute}
            noop = attrs.get("noop_with_empty_axes")
            if noop is None:
                continue
            if noop.i == 0 or ("axes" in attrs and len(attrs["axes"].ints) > 0):
                n.attribute.remove(noop)
                fixes.append(f"{n.op_type}:{n.name}")
            else:
                raise ExportError(f"{n.op_type} {n.name}: noop_with_empty_axes=1 cannot be expressed at opset {target}")
    return fixes


def convert(proto: onnx.ModelProto, target: int, log: Callable[[str], None] | None = None) -> onnx.ModelProto:
    """onnx.version_converter.convert_version plus the repairs of :func:`_fix_downconverted`."""
    from onnx import version_converter

    out = version_converter.convert_version(proto, target)
    fixes = _fix_downconverted(out, target)
    if fixes and log is not None:
        log(
            f"dropped noop_with_empty_axes (not valid before opset 18) that onnx.version_converter "
            f"left on {len(fixes)} Reduce* node(s)"
        )
    return out


# The model property the importer trains from (TRAINABLE_METADATA_KEY is
# kTrainableMetadataKey in include/weipipe/Importer/OnnxImporter.h).
TRAINABLE_METADATA_KEY = "weipipe.trainable"


def record_trainable(proto: onnx.ModelProto, model: torch.nn.Module) -> dict[str, str]:
    """Record which initializers hold the module's trainable parameters.

    The file itself does not say: exporters fold buffers (rotary tables, masks)
    into initializers and rename the weights they transpose. The initializers
    are matched to ``model.parameters()`` as the reference trainer matches them
    (by name, else bitwise by value or transposed value), and the result,
    ``{initializer: PyTorch parameter name}``, is stored as JSON in the model
    property ``weipipe.trainable``, which the importer trusts. Returns the map
    (empty, and nothing recorded, when the match is ambiguous: then the
    importer decides from the graph's structure).
    """
    import json

    from weipipe.reference import match as M
    from weipipe.reference.errors import RefError

    # Matching loads the file's values into the parameters; they are equal
    # (just exported), but work on a copy so the caller's module is untouched.
    try:
        bindings, _ = M.match(copy.deepcopy(model), proto)
    except RefError as e:
        _log(f"not recording the trained set ({TRAINABLE_METADATA_KEY}): {e}".splitlines()[0])
        return {}
    trained = {h.name: b.name for b in bindings for h in b.holders}
    for prop in list(proto.metadata_props):
        if prop.key == TRAINABLE_METADATA_KEY:
            proto.metadata_props.remove(prop)
    prop = proto.metadata_props.add()
    prop.key = TRAINABLE_METADATA_KEY
    prop.value = json.dumps(trained, sort_keys=True)
    return trained


_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE,
}


def save(proto: onnx.ModelProto, path: str, external_data: bool = False) -> None:
    """Save ``proto``; with ``external_data`` every floating-point initializer (the
    weights, of any size) goes to ``<path>.data`` next to the model.

    Integer/bool initializers (shape constants, axes, indices) stay inline:
    onnxruntime cannot load a model whose shape-inference inputs (e.g. Unsqueeze
    axes) are external ("Cannot parse data from external tensors").
    """
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    if not external_data:
        onnx.save_model(proto, path)
        return
    location = os.path.basename(path) + ".data"
    if os.path.exists(os.path.join(d, location)):
        os.remove(os.path.join(d, location))
    proto = copy.deepcopy(proto)
    for t in proto.graph.initializer:
        if t.data_type not in _FLOAT_TYPES or t.data_location == onnx.TensorProto.EXTERNAL:
            continue
        if not t.HasField("raw_data"):
            arr = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
        set_external_data(t, location)
    onnx.save_model(proto, path)


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    shapes: list[tuple[int, int]] = field(default_factory=list)
    max_rel_err: float = 0.0
    ort_seconds: float = 0.0


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    denom = max(float(np.max(np.abs(ref))), 1e-12)
    return float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) / denom


def _external_files(path: str) -> set[str]:
    from onnx.external_data_helper import _get_all_tensors

    m = onnx.load(path, load_external_data=False)
    files = set()
    for t in _get_all_tensors(m):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    files.add(kv.value)
    return files


def verify(
    name: str,
    model: torch.nn.Module,
    path: str,
    shapes: list[tuple[int, int]],
    rtol: float = VERIFY_RTOL,
) -> VerifyResult:
    """onnx.checker + onnxruntime vs PyTorch on random input_ids for each (batch, seq).

    Every output (logits and present.*) is compared; the error measure is
    max|ort - torch| / max|torch| per output. For HF models the second shape
    also left-pads the first row by 3 (attention_mask 0 there); padded
    positions are excluded from the comparison. Raises VerificationError.
    """
    import onnxruntime as ort

    try:
        if os.path.getsize(path) + sum(
            os.path.getsize(os.path.join(os.path.dirname(path), f))
            for f in _external_files(path)
        ) < 2**31 - 2**24:
            # load external data too: full_check's shape inference cannot read it from disk
            onnx.checker.check_model(onnx.load(path), full_check=True)
        else:
            onnx.checker.check_model(path)
    except Exception as e:  # noqa: BLE001
        raise VerificationError(f"onnx.checker failed: {type(e).__name__}: {e}") from e

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    t0 = time.perf_counter()
    try:
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise VerificationError(f"onnxruntime could not load the model: {type(e).__name__}: {e}") from e
    onnx_in = [i.name for i in sess.get_inputs()]
    onnx_out = [o.name for o in sess.get_outputs()]
    res = VerifyResult()
    for i, (b, s) in enumerate(shapes):
        pad = 3 if (MODELS[name].kind == "hf" and i == 1 and s > 4) else 0
        inputs = make_inputs(name, model, b, s, seed=1000 + i, left_pad=pad)
        valid = inputs["attention_mask"].numpy().astype(bool) if pad else None
        if list(inputs) != onnx_in:
            raise VerificationError(f"graph inputs {onnx_in} != expected {list(inputs)}")
        with torch.no_grad():
            ref = model(*inputs.values())
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        try:
            got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
        except Exception as e:  # noqa: BLE001
            raise VerificationError(
                f"onnxruntime run failed at batch={b} seq={s}: {type(e).__name__}: {e}"
            ) from e
        if len(got) != len(ref):
            raise VerificationError(f"{len(got)} ONNX outputs vs {len(ref)} torch outputs")
        for oname, g, r in zip(onnx_out, got, ref):
            r = r.detach().numpy()
            if g.shape != r.shape:
                raise VerificationError(
                    f"output {oname} shape {g.shape} != torch {r.shape} at batch={b} seq={s}"
                )
            if valid is not None:  # logits [B, S, V]; present [B, H, S, D]
                sel = valid[:, :, None] if g.ndim == 3 else valid[:, None, :, None]
                sel = np.broadcast_to(sel, g.shape)
                g, r = g[sel], r[sel]
            if not np.all(np.isfinite(g)):
                raise VerificationError(f"output {oname} has non-finite values at batch={b} seq={s}")
            err = _rel_err(g, r)
            res.max_rel_err = max(res.max_rel_err, err)
            if err > rtol:
                raise VerificationError(
                    f"output {oname} mismatch at batch={b} seq={s} left_pad={pad}: "
                    f"max rel err {err:.3g} > {rtol:g}"
                )
        res.shapes.append((b, s))
    res.ort_seconds = time.perf_counter() - t0
    return res


def verify_shapes(batch: int, seq: int) -> list[tuple[int, int]]:
    """The export shape plus a different one, to check the dynamic axes (and padding, HF)."""
    other = (batch + 1, max(2, seq - 5))
    return [(batch, seq), other]


# --------------------------------------------------------------------------- driver


@dataclass
class ExportResult:
    name: str
    exporter: str
    requested_opset: int | None
    native_opset: int
    opset: int
    converted: bool
    path: str
    export_seconds: float
    verify: VerifyResult | None
    proto: onnx.ModelProto | None = None

    @property
    def route(self) -> str:
        if self.converted:
            return f"{self.exporter}@{self.native_opset}->convert_version({self.opset})"
        return f"{self.exporter}@{self.opset}"


def export(
    name: str,
    out: str,
    exporter: str = "dynamo",
    opset: int | None = None,
    batch: int = 2,
    seq: int = 16,
    external_data: bool = False,
    seed: int = 0,
    do_verify: bool = True,
    fold: bool = True,
    attn: str | None = None,
    layers: int | None = None,
    log: Callable[[str], None] = _log,
    record: bool = True,
) -> ExportResult:
    if exporter not in NATIVE_OPSETS:
        raise ValueError(f"unknown exporter {exporter!r}; choose from {EXPORTERS}")
    torch.manual_seed(seed)
    model = build_model(name, seed, attn, layers)
    inputs = make_inputs(name, model, batch, seq, seed)

    native = None if opset is None else nearest_native(exporter, opset)
    if opset is not None and native != opset:
        log(
            f"{exporter} exporter cannot emit opset {opset} directly (supports "
            f"{NATIVE_OPSETS[exporter].start}..{NATIVE_OPSETS[exporter].stop - 1}); exporting at "
            f"opset {native} and converting with onnx.version_converter.convert_version"
        )
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            proto = export_native(name, model, inputs, exporter, native, fold)
    except Exception as e:
        raise ExportError(f"{exporter} export of {name} at opset {native} failed: {type(e).__name__}: {e}") from e
    native_opset = model_opset(proto)
    converted = False
    if opset is not None and native_opset != opset:
        try:
            proto = convert(proto, opset, log)
        except Exception as e:
            raise ExportError(
                f"onnx.version_converter.convert_version {native_opset} -> {opset} failed: {type(e).__name__}: {e}"
            ) from e
        converted = True
        log(f"converted opset {native_opset} -> {model_opset(proto)}")
    export_seconds = time.perf_counter() - t0
    if record:
        record_trainable(proto, model)
    save(proto, out, external_data)
    log(
        f"exported {name} with {exporter} at opset {model_opset(proto)} -> {out}"
        + (f" (+ {os.path.basename(out)}.data)" if external_data else "")
        + f" in {export_seconds:.1f}s"
    )
    vr = None
    if do_verify:
        vr = verify(name, model, out, verify_shapes(batch, seq))
        log(
            f"verified: onnx.checker ok; onnxruntime matches torch on shapes {vr.shapes}"
            + (" (2nd left-padded)" if MODELS[name].kind == "hf" else "")
            + " "
            f"(max rel err {vr.max_rel_err:.2e} <= {VERIFY_RTOL:g})"
        )
    return ExportResult(name, exporter, opset, native_opset, model_opset(proto), converted,
                        out, export_seconds, vr, proto)
