"""Op inventory of exported models, and the export matrix runner.

    python -m weipipe.models.inventory [-o /tmp/op-inventory.txt] [--models gpt2,hf-llama]
                                       [--workdir /tmp/weipipe-matrix] [--no-extended]

For every (model, exporter, opset) in the matrix the model is exported (native
exports are cached per model/exporter/opset; other opsets are reached with
onnx.version_converter), verified, and summarised in one line:

    MODEL EXPORTER OPSET STATUS route=... | opset_import: ... | ops: ... |
    functions: ... | inputs: ... | outputs: ... | initializers: N | ...

``ops`` is the sorted set of op types of the main graph (domain-qualified as
``domain:Op`` when not the default domain), ``functions`` the same for each
model-local function. Shapes show dim_params by name.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import traceback

import onnx

from . import MODELS, build_model


def _op(node: onnx.NodeProto) -> str:
    return f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def _graph_ops(graph: onnx.GraphProto) -> set[str]:
    ops = set()
    for n in graph.node:
        ops.add(_op(n))
        for a in n.attribute:  # subgraphs (If/Loop/Scan)
            if a.type == onnx.AttributeProto.GRAPH:
                ops |= _graph_ops(a.g)
            for g in a.graphs:
                ops |= _graph_ops(g)
    return ops


def _vi(v: onnx.ValueInfoProto) -> str:
    t = v.type.tensor_type
    et = onnx.TensorProto.DataType.Name(t.elem_type).lower() if t.elem_type else "?"
    if not t.HasField("shape"):
        return f"{v.name}:{et}[?]"
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(str(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append("?")
    return f"{v.name}:{et}[{','.join(dims)}]"


def summarize(proto: onnx.ModelProto) -> dict:
    g = proto.graph
    funcs = {}
    for f in proto.functions:
        fops = set()
        for n in f.node:
            fops.add(_op(n))
        funcs[f"{f.domain}:{f.name}"] = sorted(fops)
    return {
        "opset_import": sorted((i.domain or "ai.onnx", i.version) for i in proto.opset_import),
        "ops": sorted(_graph_ops(g)),
        "functions": funcs,
        "inputs": [_vi(v) for v in g.input],
        "outputs": [_vi(v) for v in g.output],
        "initializers": len(g.initializer),
        "nodes": len(g.node),
    }


def format_summary(s: dict) -> str:
    parts = [
        "opset_import: " + ",".join(f"{d}={v}" for d, v in s["opset_import"]),
        f"ops({len(s['ops'])}): " + " ".join(s["ops"]),
    ]
    if s["functions"]:
        parts.append("functions: " + " ; ".join(f"{k}{{{' '.join(v)}}}" for k, v in s["functions"].items()))
    parts += [
        "inputs: " + " ".join(s["inputs"]),
        "outputs: " + " ".join(s["outputs"]),
        f"initializers: {s['initializers']}",
        f"nodes: {s['nodes']}",
    ]
    return " | ".join(parts)


# --------------------------------------------------------------------------- matrix


def matrix(models: list[str], extended: bool = True) -> list[tuple[str, str, int | None, str | None]]:
    """(model, exporter, opset or None for the exporter default, HF attention impl or None)."""
    from .export import EXPORTERS

    rows: list[tuple[str, str, int | None, str | None]] = []
    for m in models:
        core = [("dynamo", None), ("dynamo", 23), ("torchscript", 14), ("torchscript", 17)]
        rows += [(m, e, o, None) for e, o in core]
    if extended:
        lo, hi = 13, onnx.defs.onnx_opset_version()
        for m in models:
            if MODELS[m].kind != "hf":
                continue
            for o in range(lo, hi + 1):
                for e in EXPORTERS:
                    if (m, e, o, None) not in rows:
                        rows.append((m, e, o, None))
            # eager (written-out) attention: the only route to opset 13, and the older-style graph
            rows += [(m, "torchscript", 13, "eager"), (m, "torchscript", 17, "eager"),
                     (m, "dynamo", None, "eager"), (m, "dynamo", 23, "eager")]
    return rows


def _first_lines(msg: str, n: int = 3, width: int = 400) -> str:
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    return " / ".join(lines[:n])[:width]


def run_matrix(rows, out_path: str, workdir: str, errlog: str) -> list[str]:
    import torch

    from . import export as ex

    os.makedirs(workdir, exist_ok=True)
    cache: dict[tuple[str, str, int | None], tuple[onnx.ModelProto | None, str | None, float]] = {}
    models: dict[str, torch.nn.Module] = {}
    lines: list[str] = []
    header = [
        f"# weipipe op inventory: torch {torch.__version__}, onnx {onnx.__version__}, "
        f"onnxscript {__import__('onnxscript').__version__}, onnxruntime {__import__('onnxruntime').__version__}, "
        f"transformers {__import__('transformers').__version__}",
        f"# dynamo default opset = {ex.default_opset('dynamo')}; native opsets: "
        + ", ".join(f"{k} {r.start}..{r.stop - 1}" for k, r in ex.NATIVE_OPSETS.items())
        + "; other opsets = native export + onnx.version_converter.convert_version",
        "# export shape batch=2 seq=16; verified with onnx.checker(full_check) + onnxruntime vs torch at (2,16) and (3,11) "
        "(HF: row 0 of the second left-padded by 3), all outputs, max|diff|/max|ref| <= 1e-4",
        "# EXPORTER+eager = HF model built with attn_implementation='eager' (default is sdpa)",
        "# format: MODEL EXPORTER OPSET STATUS route | opset_import | ops(N) | [functions] | inputs | outputs | initializers | nodes | times",
    ]

    def flush():
        with open(out_path + ".tmp", "w") as f:
            f.write("\n".join(header + lines) + "\n")
        os.replace(out_path + ".tmp", out_path)

    errf = open(errlog, "w")
    for name, exporter, opset, attn in rows:
        label = "default" if opset is None else str(opset)
        if (name, attn) not in models:
            models[(name, attn)] = build_model(name, 0, attn)
        model = models[(name, attn)]
        native = None if opset is None else ex.nearest_native(exporter, opset)
        key = (name, attn, exporter, native)
        if key not in cache:
            inputs = ex.make_inputs(name, model, 2, 16, 0)
            t0 = time.perf_counter()
            try:
                with torch.no_grad():
                    proto = ex.export_native(name, model, inputs, exporter, native)
                cache[key] = (proto, None, time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001
                cache[key] = (None, f"{type(e).__name__}: {e}", time.perf_counter() - t0)
                errf.write(f"==== {name} {exporter} attn={attn} native opset {native}\n{traceback.format_exc()}\n")
                errf.flush()
        proto, err, t_export = cache[key]
        xname = exporter + (f"+{attn}" if attn else "")
        prefix = f"{name} {xname} {label}"
        if proto is None:
            lines.append(f"{prefix} FAIL(export) route={exporter}@{native} | error: {_first_lines(err)}")
            print(lines[-1], flush=True)
            flush()
            continue
        nat_opset = ex.model_opset(proto)
        route = f"{exporter}@{nat_opset}"
        conv_t = 0.0
        notes: list[str] = []
        if opset is not None and nat_opset != opset:
            route += f"->convert_version({opset})"
            t0 = time.perf_counter()
            try:
                proto = ex.convert(copy.deepcopy(proto), opset, log=lambda m: notes.append(m))
            except Exception as e:  # noqa: BLE001
                lines.append(f"{prefix} FAIL(convert) route={route} | error: {type(e).__name__}: {_first_lines(str(e))}")
                errf.write(f"==== {prefix} convert\n{traceback.format_exc()}\n")
                errf.flush()
                print(lines[-1], flush=True)
                flush()
                continue
            conv_t = time.perf_counter() - t0
        path = os.path.join(workdir, f"{name}-{xname}-{label}.onnx")
        ex.save(proto, path)
        status = "OK"
        detail = ""
        try:
            vr = ex.verify(name, model, path, ex.verify_shapes(2, 16))
            detail = f"max_rel_err={vr.max_rel_err:.1e}"
        except Exception as e:  # noqa: BLE001
            status = "FAIL(verify)"
            detail = "error: " + _first_lines(str(e))
            errf.write(f"==== {prefix} verify\n{e}\n")
            errf.flush()
        summ = format_summary(summarize(proto))
        times = f"export {t_export:.1f}s" + (f" convert {conv_t:.1f}s" if conv_t else "")
        if notes:
            detail += " | note: " + "; ".join(notes)
        lines.append(f"{prefix} {status} route={route} | {summ} | {times} | {detail}")
        print(f"{prefix} {status} route={route} {times} {detail}", flush=True)
        flush()
    errf.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m weipipe.models.inventory")
    p.add_argument("-o", "--output", default="/tmp/op-inventory.txt")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--workdir", default="/tmp/weipipe-matrix")
    p.add_argument("--no-extended", action="store_true", help="only the core 4 columns")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summarize", nargs="*", metavar="MODEL.onnx", help="just summarise existing files")
    a = p.parse_args(argv)
    if a.summarize:
        for path in a.summarize:
            print(f"{path} | {format_summary(summarize(onnx.load(path, load_external_data=False)))}")
        return 0
    torch.set_num_threads(a.threads)
    models = [m for m in a.models.split(",") if m]
    rows = matrix(models, extended=not a.no_extended)
    run_matrix(rows, a.output, a.workdir, a.output + ".errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
