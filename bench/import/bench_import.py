#!/usr/bin/env python3
"""Import benchmark: weipipe-opt on Llama-shaped ONNX graphs of growing depth.

Generates Llama-shaped ONNX models (8, 32 and 80 layers at hidden 4096 by
default) whose weights are ONNX external data pointing into one *sparse*
weights file per model, so an 80-layer model (~57 GB of fp32 weights) costs
neither disk nor RAM.  For each model it runs

    weipipe-opt MODEL.onnx -o /dev/null

--repeat times and reports the median wall time and the peak RSS of that
child, next to a peer measured in the same run on the same file:
``onnx.load(path, load_external_data=False)`` in a fresh Python process.
Performance is reported as a ratio against that peer, never as a pass/fail
timing test; missed targets are reported, not turned into a failing exit code.
The exit code is non-zero only when something actually fails (weipipe-opt
exits non-zero or hangs past --timeout, the generator or the peer breaks).

Measurement notes
-----------------
* Peak RSS is ``ru_maxrss`` of the one child, from ``os.wait4(pid)``.  Linux
  carries the parent's RSS high-water mark into a child across fork+exec, so
  this driver process deliberately imports nothing but the standard library:
  model generation runs in a separate child (``--_generate``), which keeps the
  driver's own RSS -- the floor under every measurement -- at ~10 MiB.  The
  floor is measured (``/bin/true``) and printed.
* Both sides are reported gross and net of their own empty-run baseline:
  weipipe-opt on an empty ``module {}`` (process start, dialect registration,
  printing), and ``python -c "import onnx"`` for the peer.  The peer's time is
  taken inside the child around ``onnx.load`` (exactly the interpreter baseline
  subtracted, without the noise of subtracting two process wall times); its
  RSS is the child's peak minus the baseline child's peak.  The ratio is
  net weipipe-opt / net peer, for time and for memory.
* Per-layer figures are incremental between consecutive rows,
  (x_L - x_prev) / (L - L_prev), which cancels fixed costs (process start,
  embedding, lm head); the first row shows net / L.
"""

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
ALIGN = 4096

REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OPT = os.path.join(REPO_ROOT, "build", "bin", "weipipe-opt")

# Targets from the issue.
TARGET_MS_PER_LAYER = 20.0
TARGET_80_LAYERS_MS = 2000.0
# "Flat memory per layer": the per-layer RSS increment of the deepest segment
# may exceed the shallowest one by this factor plus this slack (noise).
FLAT_FACTOR = 1.25
FLAT_SLACK_MIB = 2.0
# Net RSS per layer above this fraction of a layer's weight bytes means the
# importer reads (materializes) the external weights.
MATERIALIZED_FRACTION = 0.10


# --------------------------------------------------------------------------
# Model generation (runs in a child process; the only place onnx is imported)
# --------------------------------------------------------------------------

def llama_intermediate(hidden):
    """Llama's SwiGLU width: 2/3 of 4H rounded up to 256 (11008 at 4096)."""
    n = int(2 * 4 * hidden / 3)
    return 256 * ((n + 255) // 256)


def build_llama(layers, hidden, heads, kv_heads, intermediate, vocab, seq,
                symbolic, mask_kind, weights_name):
    """Returns (ModelProto, weights file size in bytes, parameter count).

    Every initializer is external data at a 4096-aligned offset into
    `weights_name` (relative to the model's directory); no tensor bytes are
    created.  Graph input input_ids [1, seq] int64 (seq symbolic when asked),
    output logits [1, seq, vocab] float.
    """
    import numpy as np
    from onnx import TensorProto, helper

    head_dim = hidden // heads
    assert head_dim * heads == hidden, "hidden must be a multiple of heads"
    assert heads % kv_heads == 0, "heads must be a multiple of kv_heads"
    rep = heads // kv_heads
    kv_dim = kv_heads * head_dim

    nodes = []
    inits = []
    offset = 0
    params = 0

    def weight(name, dims):
        nonlocal offset, params
        offset = (offset + ALIGN - 1) // ALIGN * ALIGN
        count = 1
        for d in dims:
            count *= d
        length = count * 4
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(dims)
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", weights_name), ("offset", offset),
                           ("length", length)):
            entry = t.external_data.add()
            entry.key = key
            entry.value = str(value)
        inits.append(t)
        offset += length
        params += count
        return name

    def node(op, inputs, name, **attrs):
        out = name + "_output_0"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def const(name, array):
        nodes.append(helper.make_node(
            "Constant", [], [name], name=name,
            value=helper.make_tensor(name, helper.np_dtype_to_tensor_dtype(
                array.dtype), array.shape, array.flatten().tolist())))
        return name

    def i64(*v):
        return np.array(v, dtype=np.int64)

    def f32(v):
        return np.array(v, dtype=np.float32)

    # Small shared constants (not weights).
    c_two = const("/model/Constant_pow_exponent", f32(2.0))
    c_axes = const("/model/Constant_reduce_axes", i64(-1))
    c_eps = const("/model/Constant_rms_eps", f32(1e-5))
    c_scale = const("/model/Constant_attn_scale", f32(1.0 / head_dim ** 0.5))
    # Reshape targets use 0 (copy the input dim) and -1 so that a symbolic
    # sequence length works too.
    c_q_heads = const("/model/Constant_q_heads_shape",
                      i64(0, 0, heads, head_dim))
    c_kv_heads = const("/model/Constant_kv_heads_shape",
                       i64(0, 0, kv_heads, head_dim))
    c_merge = const("/model/Constant_merge_heads_shape", i64(0, 0, hidden))
    causal = np.triu(np.ones((seq, seq), dtype=bool), k=1)[None, None]
    if mask_kind == "add":
        c_mask = const("/model/Constant_causal_mask",
                       np.where(causal, np.finfo(np.float32).min,
                                0).astype(np.float32))
    else:
        c_mask = const("/model/Constant_causal_mask", ~causal)
        c_neg = const("/model/Constant_mask_fill",
                      f32(np.finfo(np.float32).min))
    if symbolic:
        # The constant mask covers `seq` positions; slice it to the runtime
        # length as exporters do: mask[:, :, :S, :S], S = shape(input_ids)[1].
        c_one = const("/model/Constant_seq_axis", i64(1))
        c_two_i = const("/model/Constant_seq_axis_end", i64(2))
        c_zeros = const("/model/Constant_mask_starts", i64(0, 0))
        c_mask_axes = const("/model/Constant_mask_axes", i64(2, 3))
        shp = node("Shape", ["input_ids"], "/model/Shape")
        s_len = node("Slice", [shp, c_one, c_two_i], "/model/Slice")
        ends = node("Concat", [s_len, s_len], "/model/Concat", axis=0)
        c_mask = node("Slice", [c_mask, c_zeros, ends, c_mask_axes],
                      "/model/Slice_1")
    if rep > 1:
        c_k_split = const("/model/Constant_k_split_shape",
                          i64(0, 0, 1, head_dim, -1))
        c_v_split = const("/model/Constant_v_split_shape",
                          i64(0, 0, 1, -1, head_dim))
        c_rep = const("/model/Constant_repeat_kv", i64(1, 1, rep, 1, 1))
        c_k_merge = const("/model/Constant_k_merge_shape",
                          i64(0, heads, head_dim, -1))
        c_v_merge = const("/model/Constant_v_merge_shape",
                          i64(0, heads, -1, head_dim))

    def rms_norm(x, w, p):
        sq = node("Pow", [x, c_two], p + "/Pow")
        mean = node("ReduceMean", [sq, c_axes], p + "/ReduceMean", keepdims=1)
        var = node("Add", [mean, c_eps], p + "/Add")
        std = node("Sqrt", [var], p + "/Sqrt")
        inv = node("Reciprocal", [std], p + "/Reciprocal")
        normed = node("Mul", [x, inv], p + "/Mul")
        return node("Mul", [normed, w], p + "/Mul_1")

    embed = weight("model.embed_tokens.weight", [vocab, hidden])
    h = node("Gather", [embed, "input_ids"], "/model/embed_tokens/Gather",
             axis=0)

    for i in range(layers):
        wp = f"model.layers.{i}."
        lp = f"/model/layers.{i}"
        ap = lp + "/self_attn"
        mp = lp + "/mlp"

        x = rms_norm(h, weight(wp + "input_layernorm.weight", [hidden]),
                     lp + "/input_layernorm")
        q = node("MatMul", [x, weight(wp + "self_attn.q_proj.weight",
                                      [hidden, hidden])], ap + "/q_proj/MatMul")
        k = node("MatMul", [x, weight(wp + "self_attn.k_proj.weight",
                                      [hidden, kv_dim])], ap + "/k_proj/MatMul")
        v = node("MatMul", [x, weight(wp + "self_attn.v_proj.weight",
                                      [hidden, kv_dim])], ap + "/v_proj/MatMul")
        q = node("Reshape", [q, c_q_heads], ap + "/Reshape")
        q = node("Transpose", [q], ap + "/Transpose", perm=[0, 2, 1, 3])
        k = node("Reshape", [k, c_kv_heads], ap + "/Reshape_1")
        k = node("Transpose", [k], ap + "/Transpose_1", perm=[0, 2, 3, 1])
        v = node("Reshape", [v, c_kv_heads], ap + "/Reshape_2")
        v = node("Transpose", [v], ap + "/Transpose_2", perm=[0, 2, 1, 3])
        if rep > 1:  # repeat_kv: [B,kv,..] -> [B,kv,1,..] -> expand -> [B,H,..]
            k = node("Reshape", [k, c_k_split], ap + "/repeat_kv/Reshape")
            k = node("Expand", [k, c_rep], ap + "/repeat_kv/Expand")
            k = node("Reshape", [k, c_k_merge], ap + "/repeat_kv/Reshape_1")
            v = node("Reshape", [v, c_v_split], ap + "/repeat_kv_1/Reshape")
            v = node("Expand", [v, c_rep], ap + "/repeat_kv_1/Expand")
            v = node("Reshape", [v, c_v_merge], ap + "/repeat_kv_1/Reshape_1")
        s = node("MatMul", [q, k], ap + "/MatMul")
        s = node("Mul", [s, c_scale], ap + "/Mul")
        if mask_kind == "add":
            s = node("Add", [s, c_mask], ap + "/Add")
        else:
            s = node("Where", [c_mask, s, c_neg], ap + "/Where")
        s = node("Softmax", [s], ap + "/Softmax", axis=-1)
        o = node("MatMul", [s, v], ap + "/MatMul_1")
        o = node("Transpose", [o], ap + "/Transpose_3", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, c_merge], ap + "/Reshape_3")
        o = node("MatMul", [o, weight(wp + "self_attn.o_proj.weight",
                                      [hidden, hidden])], ap + "/o_proj/MatMul")
        h = node("Add", [h, o], lp + "/Add")

        x = rms_norm(h, weight(wp + "post_attention_layernorm.weight",
                               [hidden]), lp + "/post_attention_layernorm")
        g = node("MatMul", [x, weight(wp + "mlp.gate_proj.weight",
                                      [hidden, intermediate])],
                 mp + "/gate_proj/MatMul")
        u = node("MatMul", [x, weight(wp + "mlp.up_proj.weight",
                                      [hidden, intermediate])],
                 mp + "/up_proj/MatMul")
        sg = node("Sigmoid", [g], mp + "/act_fn/Sigmoid")
        g = node("Mul", [g, sg], mp + "/act_fn/Mul")
        g = node("Mul", [g, u], mp + "/Mul")
        d = node("MatMul", [g, weight(wp + "mlp.down_proj.weight",
                                      [intermediate, hidden])],
                 mp + "/down_proj/MatMul")
        h = node("Add", [h, d], lp + "/Add_1")

    x = rms_norm(h, weight("model.norm.weight", [hidden]), "/model/norm")
    logits = node("MatMul", [x, weight("lm_head.weight", [hidden, vocab])],
                  "/lm_head/MatMul")
    nodes[-1].output[0] = "logits"

    seq_dim = "sequence_length" if symbolic else seq
    graph = helper.make_graph(
        nodes, f"llama_{layers}l_h{hidden}",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                       [1, seq_dim])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       [1, seq_dim, vocab])],
        initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)],
        producer_name="weipipe-bench-import")
    model.ir_version = 8
    return model, offset, params


def validate(path, model_bytes_expected, weights_path, weights_size,
             layers, vocab, seq, symbolic, full_check):
    """Checks the saved model without ever reading its external data."""
    import onnx
    from onnx import TensorProto

    notes = []
    if full_check:
        # The path form checks the external data references (files exist,
        # stay inside the model's directory) without loading tensor bytes.
        onnx.checker.check_model(path)
        notes.append("checker")
    m = onnx.load(path, load_external_data=False)
    assert m.ByteSize() == model_bytes_expected, "round trip changed the model"
    assert m.ir_version == 8 and m.opset_import[0].version == 18
    ends = []
    for t in m.graph.initializer:
        assert t.data_location == TensorProto.EXTERNAL, t.name
        assert not t.HasField("raw_data"), t.name
        ext = {e.key: e.value for e in t.external_data}
        off, length = int(ext["offset"]), int(ext["length"])
        n = 1
        for d in t.dims:
            n *= d
        assert off % ALIGN == 0, f"{t.name}: offset {off} not aligned"
        assert length == 4 * n, f"{t.name}: length {length} != 4*{n}"
        assert off + length <= weights_size, f"{t.name}: past end of file"
        assert os.path.join(os.path.dirname(path), ext["location"]) == \
            weights_path
        ends.append((off, off + length))
    ends.sort()
    for (_, e0), (s1, _) in zip(ends, ends[1:]):
        assert e0 <= s1, "overlapping external data ranges"
    assert len([t for t in m.graph.initializer
                if t.name.startswith("model.layers.")]) == 9 * layers
    notes.append("load+extdata")
    if full_check:
        # Strict shape inference over the whole graph proves the generated
        # graph is well-formed end to end (initializer dims suffice).
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True,
                                                     data_prop=True)
        out = inferred.graph.output[0].type.tensor_type.shape.dim
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value
                for d in out]
        want = [1, "sequence_length" if symbolic else seq, vocab]
        assert dims == want, f"logits shape {dims}, expected {want}"
        notes.append("shape-inference")
    return notes


def generate_main(args):
    """Child mode: writes one model + sparse weights per depth, prints JSON."""
    heads = args.heads or args.hidden // 128
    kv_heads = args.kv_heads or heads
    inter = args.intermediate or llama_intermediate(args.hidden)
    import numpy  # noqa: F401  (imported up front: not part of gen time)
    import onnx  # noqa: F401
    for layers in args.layers:
        base = f"llama_{layers}l_h{args.hidden}"
        path = os.path.join(args.out_dir, base + ".onnx")
        weights_name = base + ".weights"
        weights_path = os.path.join(args.out_dir, weights_name)
        t0 = time.perf_counter()
        model, weights_size, params = build_llama(
            layers, args.hidden, heads, kv_heads, inter, args.vocab, args.seq,
            args.symbolic_seq, args.mask, weights_name)
        data = model.SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        # Sparse: set the size, write nothing.
        with open(weights_path, "wb") as f:
            f.truncate(weights_size)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        checks = validate(path, len(data), weights_path, weights_size, layers,
                          args.vocab, args.seq, args.symbolic_seq,
                          not args.no_check)
        check_s = time.perf_counter() - t0
        st = os.stat(weights_path)
        print(json.dumps({
            "layers": layers, "path": path, "weights": weights_path,
            "nodes": len(model.graph.node),
            "initializers": len(model.graph.initializer),
            "model_bytes": len(data), "weights_bytes": weights_size,
            "weights_allocated": st.st_blocks * 512, "params": params,
            "layer_weight_bytes": 4 * (2 * args.hidden * args.hidden
                                       + 2 * args.hidden * kv_heads
                                       * (args.hidden // heads)
                                       + 3 * args.hidden * inter
                                       + 2 * args.hidden),
            "gen_s": gen_s, "check_s": check_s, "checks": checks,
        }), flush=True)


# --------------------------------------------------------------------------
# Measurement (driver; standard library only, see the module docstring)
# --------------------------------------------------------------------------

class ChildFailed(Exception):
    def __init__(self, cmd, why, stderr):
        super().__init__(why)
        self.cmd, self.why, self.stderr = cmd, why, stderr


def run_measured(cmd, timeout, env=None):
    """Runs cmd to completion; returns (wall s, peak RSS bytes, stdout).

    Peak RSS is ru_maxrss of this child alone (os.wait4).  Raises ChildFailed
    on a non-zero exit or timeout.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        # Own session: a timeout or Ctrl-C kills the child's whole group.
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, env=env, start_new_session=True)
        timed_out = False
        try:
            if hasattr(os, "pidfd_open"):
                fd = os.pidfd_open(p.pid)
                try:
                    ready, _, _ = select.select([fd], [], [], timeout)
                finally:
                    os.close(fd)
                if not ready:
                    timed_out = True
                    # Not reaped yet, so the pid (= pgid) cannot be reused.
                    os.killpg(p.pid, signal.SIGKILL)
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
            except OSError:
                pass
            p.returncode = -signal.SIGKILL
            raise
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if timed_out:
        raise ChildFailed(cmd, f"timed out after {timeout} s", stderr)
    if p.returncode != 0:
        raise ChildFailed(cmd, f"exit status {p.returncode}", stderr)
    # ru_maxrss is in KiB on Linux.
    return wall, ru.ru_maxrss * 1024, stdout


def median_run(cmd, repeat, timeout):
    """Median wall, median peak RSS and all stdouts over `repeat` runs."""
    walls, rss, outs = [], [], []
    for _ in range(repeat):
        w, r, o = run_measured(cmd, timeout)
        walls.append(w)
        rss.append(r)
        outs.append(o)
    return statistics.median(walls), statistics.median(rss), outs


PEER_CODE = (
    "import sys, time, onnx\n"
    "t = time.perf_counter()\n"
    "m = onnx.load(sys.argv[1], load_external_data=False)\n"
    "print(time.perf_counter() - t, len(m.graph.node))\n")


def fmt_bytes(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def per_layer(rows, key):
    """Incremental per-layer values between consecutive rows; the first row
    gets its net value / L (marked as such by the caller)."""
    out = []
    for i, r in enumerate(rows):
        if i == 0:
            out.append(r[key] / r["layers"])
        else:
            p = rows[i - 1]
            out.append((r[key] - p[key]) / (r["layers"] - p["layers"]))
    return out


def parse_layers(text):
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad layer list '{text}'")
    if not layers or layers[0] < 1:
        raise argparse.ArgumentTypeError("layers must be positive integers")
    return layers


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weipipe-opt", default=DEFAULT_OPT,
                    help="weipipe-opt binary (default: %(default)s)")
    ap.add_argument("--layers", type=parse_layers, default=[8, 32, 80],
                    help="comma-separated depths (default: 8,32,80)")
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=0,
                    help="attention heads (default: hidden/128)")
    ap.add_argument("--kv-heads", type=int, default=0,
                    help="key/value heads; fewer than --heads gives GQA "
                    "(repeat_kv via Reshape/Expand) (default: --heads)")
    ap.add_argument("--intermediate", type=int, default=0,
                    help="MLP width (default: Llama's rule, 11008 at 4096)")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--symbolic-seq", action="store_true",
                    help="make the sequence dimension symbolic and pass "
                    "--input-shape=input_ids=1,SEQ to weipipe-opt")
    ap.add_argument("--mask", choices=("add", "where"), default="add",
                    help="causal mask as Add of a float constant or Where on "
                    "a bool constant (default: add)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement; the median is reported")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds before a single run counts as a failure")
    ap.add_argument("--opt-arg", action="append", default=[],
                    help="extra argument for weipipe-opt (repeatable)")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the models to DIR and keep them")
    ap.add_argument("--no-check", action="store_true",
                    help="skip onnx.checker and strict shape inference of the "
                    "generated models (structural checks still run)")
    ap.add_argument("--generate-only", action="store_true",
                    help="generate and validate the models, measure nothing")
    ap.add_argument("--_generate", action="store_true",
                    help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def child_argv(args, out_dir):
    argv = [sys.executable, os.path.abspath(__file__), "--_generate",
            "--out-dir", out_dir,
            "--layers", ",".join(map(str, args.layers)),
            "--hidden", str(args.hidden), "--heads", str(args.heads),
            "--kv-heads", str(args.kv_heads),
            "--intermediate", str(args.intermediate),
            "--vocab", str(args.vocab), "--seq", str(args.seq),
            "--mask", args.mask]
    if args.symbolic_seq:
        argv.append("--symbolic-seq")
    if args.no_check:
        argv.append("--no-check")
    return argv


def generate(args, out_dir):
    try:
        _, _, out = run_measured(child_argv(args, out_dir), args.timeout)
    except ChildFailed as e:
        print(f"error: model generation failed ({e.why}):\n{e.stderr}",
              file=sys.stderr)
        sys.exit(1)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    print(f"{'layers':>6} {'nodes':>6} {'inits':>6} {'model':>10} "
          f"{'weights':>10} {'on disk':>9} {'params':>8} {'gen ms':>8} "
          f"{'check ms':>9}  checks")
    for r in rows:
        print(f"{r['layers']:>6} {r['nodes']:>6} {r['initializers']:>6} "
              f"{fmt_bytes(r['model_bytes']):>10} "
              f"{fmt_bytes(r['weights_bytes']):>10} "
              f"{fmt_bytes(r['weights_allocated']):>9} "
              f"{r['params'] / 1e9:>7.2f}B {r['gen_s'] * 1e3:>8.0f} "
              f"{r['check_s'] * 1e3:>9.0f}  {','.join(r['checks'])}")
    return rows


def main(argv):
    args = parse_args(argv)
    if args._generate:
        generate_main(args)
        return 0

    with tempfile.TemporaryDirectory(prefix="weipipe-bench-import-") as tmp:
        out_dir = tmp
        if args.keep:
            out_dir = os.path.abspath(args.keep)
            os.makedirs(out_dir, exist_ok=True)
        heads = args.heads or args.hidden // 128
        print(f"Llama-shaped graphs: hidden {args.hidden}, heads {heads}, "
              f"kv heads {args.kv_heads or heads}, intermediate "
              f"{args.intermediate or llama_intermediate(args.hidden)}, "
              f"vocab {args.vocab}, seq {args.seq}"
              f"{' (symbolic)' if args.symbolic_seq else ''}, mask "
              f"{args.mask}; fp32 external data in sparse files under "
              f"{out_dir}")
        if not args.generate_only and not os.access(args.weipipe_opt,
                                                      os.X_OK):
            print(f"error: weipipe-opt not found or not executable: "
                  f"{args.weipipe_opt}\n       build it (cmake --build build "
                  f"--target weipipe-opt) or pass --weipipe-opt",
                  file=sys.stderr)
            return 1
        models = generate(args, out_dir)
        if args.generate_only:
            return 0
        return measure(args, models, tmp)


def measure(args, models, tmp):
    opt = args.weipipe_opt
    opt_flags = list(args.opt_arg)
    if args.symbolic_seq:
        opt_flags.append(f"--input-shape=input_ids=1,{args.seq}")

    def opt_cmd(path):
        return [opt, path, "-o", os.devnull] + opt_flags

    empty = os.path.join(tmp, "empty.mlir")
    with open(empty, "w") as f:
        f.write("module {}\n")

    try:
        floor_rss = run_measured(["/bin/true"], args.timeout)[1]
        py = sys.executable
        peer_base_wall, peer_base_rss, _ = median_run(
            [py, "-c", "import onnx"], args.repeat, args.timeout)
        opt_base_wall, opt_base_rss, _ = median_run(
            [opt, empty, "-o", os.devnull], args.repeat, args.timeout)
    except ChildFailed as e:
        print(f"error: baseline run failed ({e.why}): {' '.join(e.cmd)}\n"
              f"{e.stderr}", file=sys.stderr)
        return 1
    print(f"\nbaselines (median of {args.repeat}): weipipe-opt on an empty "
          f"module {opt_base_wall * 1e3:.1f} ms, {opt_base_rss / MiB:.1f} MiB;"
          f" python -c 'import onnx' {peer_base_wall * 1e3:.1f} ms, "
          f"{peer_base_rss / MiB:.1f} MiB; RSS floor (/bin/true from this "
          f"driver) {floor_rss / MiB:.1f} MiB")

    rows = []
    for m in models:
        L = m["layers"]
        cmd = opt_cmd(m["path"])
        try:
            wall, rss, _ = median_run(cmd, args.repeat, args.timeout)
        except ChildFailed as e:
            print(f"\nerror: weipipe-opt failed on the {L}-layer model "
                  f"({e.why}):\n  {' '.join(cmd)}\n{e.stderr}",
                  file=sys.stderr)
            return 1
        try:
            _, peer_rss, outs = median_run([sys.executable, "-c", PEER_CODE,
                                            m["path"]], args.repeat,
                                           args.timeout)
        except ChildFailed as e:
            print(f"\nerror: peer (onnx.load) failed on {m['path']} "
                  f"({e.why}):\n{e.stderr}", file=sys.stderr)
            return 1
        peer_s = statistics.median(float(o.split()[0]) for o in outs)
        assert all(int(o.split()[1]) == m["nodes"] for o in outs)
        rows.append({
            "layers": L, "nodes": m["nodes"], "inits": m["initializers"],
            "model_bytes": m["model_bytes"],
            "layer_weight_bytes": m["layer_weight_bytes"],
            "wall_ms": wall * 1e3,
            "net_ms": max(wall - opt_base_wall, 0.0) * 1e3,
            "rss": rss / MiB,
            "net_rss": max(rss - opt_base_rss, 0) / MiB,
            "peer_ms": peer_s * 1e3,
            "peer_rss": max(peer_rss - peer_base_rss, 0) / MiB,
        })
        print(f"  {L} layers: weipipe-opt {wall * 1e3:.1f} ms "
              f"{rss / MiB:.1f} MiB, onnx.load {peer_s * 1e3:.1f} ms",
              flush=True)

    report(args, rows, floor_rss / MiB, " ".join(opt_flags))
    return 0


def ratio(a, b):
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def report(args, rows, floor_mib, flags):
    ms_layer = per_layer(rows, "net_ms")
    rss_layer = per_layer(rows, "net_rss")
    print(f"\nweipipe-opt MODEL.onnx -o /dev/null{' ' + flags if flags else ''}"
          f" vs onnx.load(path, load_external_data=False); median of "
          f"{args.repeat}; 'net' = minus each side's empty-run baseline (peer "
          f"time taken around onnx.load in its process); per-layer = "
          f"incremental from the previous row (first row: net / L)")
    hdr = (f"{'layers':>6} {'nodes':>6} {'inits':>6} {'file':>9} "
           f"{'opt ms':>9} {'ms/layer':>9} {'RSS MiB':>8} {'MiB/layer':>9} "
           f"{'peer ms':>8} {'peer MiB':>8} {'time ratio':>10} "
           f"{'mem ratio':>9}")
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(rows):
        mark = "*" if i == 0 else " "
        print(f"{r['layers']:>6} {r['nodes']:>6} {r['inits']:>6} "
              f"{fmt_bytes(r['model_bytes']):>9} {r['wall_ms']:>9.1f} "
              f"{ms_layer[i]:>8.2f}{mark} {r['rss']:>8.1f} "
              f"{rss_layer[i]:>8.2f}{mark} {r['peer_ms']:>8.1f} "
              f"{r['peer_rss']:>8.1f} "
              f"{ratio(r['net_ms'], r['peer_ms']):>10} "
              f"{ratio(r['net_rss'], r['peer_rss']):>9}")
    print("opt ms / RSS MiB are gross; ratios are net weipipe-opt / net peer."
          " * = net / L")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        span = b["layers"] - a["layers"]
        print(f"overall per layer {a['layers']}->{b['layers']}: "
              f"{(b['net_ms'] - a['net_ms']) / span:.2f} ms, "
              f"{(b['net_rss'] - a['net_rss']) / span:.2f} MiB "
              f"(weights per layer: "
              f"{fmt_bytes(b['layer_weight_bytes'])}, external)")
    if any(r["rss"] < floor_mib * 1.5 for r in rows):
        print(f"note: some peak RSS values are near the {floor_mib:.1f} MiB "
              f"floor inherited from this driver; memory figures are "
              f"unreliable there")

    # Targets (reported, never an exit code).
    print("\ntargets:")
    # Judged on the incremental figures, which exclude fixed costs (the
    # embedding and lm head, one-time setup); with one row only net / L.
    judged = ms_layer[1:] if len(rows) > 1 else ms_layer
    worst = max(judged)
    print(f"  < {TARGET_MS_PER_LAYER:.0f} ms per layer: "
          f"{'met' if worst < TARGET_MS_PER_LAYER else 'MISSED'} "
          f"(worst {worst:.2f} ms/layer"
          f"{' incremental' if len(rows) > 1 else ', net / L'})")
    r80 = [r for r in rows if r["layers"] == 80]
    if r80:
        t = r80[0]["wall_ms"]
        print(f"  80 layers < {TARGET_80_LAYERS_MS / 1e3:.0f} s: "
              f"{'met' if t < TARGET_80_LAYERS_MS else 'MISSED'} "
              f"({t:.0f} ms, whole process)")
    elif len(rows) > 1:
        first, last = rows[0], rows[-1]
        slope = (last["wall_ms"] - first["wall_ms"]) / (last["layers"]
                                                        - first["layers"])
        t = last["wall_ms"] + (80 - last["layers"]) * slope
        print(f"  80 layers < {TARGET_80_LAYERS_MS / 1e3:.0f} s: "
              f"{'met' if t < TARGET_80_LAYERS_MS else 'MISSED'} "
              f"(extrapolated {t:.0f} ms; no 80-layer row)")
    else:
        print("  80 layers < 2 s: not measured (no 80-layer row)")
    if len(rows) >= 3:
        first, last = rss_layer[1], rss_layer[-1]
        flat = last <= first * FLAT_FACTOR + FLAT_SLACK_MIB
        print(f"  flat memory per layer: {'met' if flat else 'MISSED'} "
              f"({' -> '.join(f'{x:.2f}' for x in rss_layer[1:])} MiB/layer "
              f"over successive segments; allowed growth x{FLAT_FACTOR} "
              f"+ {FLAT_SLACK_MIB:.0f} MiB)")
    else:
        print("  flat memory per layer: needs three depths to judge")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        per = (b["net_rss"] - a["net_rss"]) / (b["layers"] - a["layers"])
        frac = per * MiB / b["layer_weight_bytes"]
        print(f"  weights stay external: "
              f"{'yes' if frac < MATERIALIZED_FRACTION else 'NO'} "
              f"({per:.2f} MiB/layer = {100 * frac:.2f}% of a layer's "
              f"{fmt_bytes(b['layer_weight_bytes'])} of weights)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
