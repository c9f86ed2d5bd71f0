"""Writes the binary ONNX models of the importer tests.

Usage: make_models.py KIND OUTDIR

Each kind writes its models into OUTDIR and prints, one per line, the facts
the test checks the importer against, computed here independently of the
importer: `PARAM <name> <offset> <length>` for a parameter's bytes in the
file it is stored in (found with bytes.find() in the serialized model or read
back from the external-data entries).

Kinds:
  params          inline parameters (raw_data, packed float_data, typed
                  int32_data, large) and initializers that are constants
  external        parameters in an external-data file, written by onnx.save
  external-errors models whose external data is missing or out of bounds
  files           a valid model to truncate, and malformed files: garbage,
                  empty, truncated before opset_import, without a graph, with
                  a sequence input, with raw_data shorter than its shape
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def make_model(nodes, inputs, outputs, initializers, opset=OPSET):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def value(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def unique_offset(data, raw):
    """Offset of `raw` in `data`, which must hold it exactly once."""
    assert data.count(raw) == 1, "raw bytes are not unique in the model"
    return data.find(raw)


def params(out):
    rng = np.random.default_rng(0)
    wte = rng.standard_normal((8, 4)).astype(np.float32)
    w16 = rng.standard_normal((4, 4)).astype(np.float16)
    b_bf16 = np.array([0x3F80, 0x4000, 0xC040, 0x3F00], dtype=np.uint16)  # 1, 2, -3, 0.5
    typed = rng.standard_normal((4, 4)).astype(np.float32)
    typed16 = rng.standard_normal((4,)).astype(np.float16)
    big = rng.standard_normal((300, 300)).astype(np.float32)  # 360000 bytes
    inv_freq = np.array([1.0, 0.25], dtype=np.float32)

    inits = [
        numpy_helper.from_array(wte, "wte.weight"),
        numpy_helper.from_array(w16, "h.0.w"),
        helper.make_tensor("h.0.b", TensorProto.BFLOAT16, [4], b_bf16.tobytes(), raw=True),
        # Typed fields: float_data is packed little-endian floats, which the
        # parameter can point at; float16 in int32_data has no raw bytes.
        helper.make_tensor("typed", TensorProto.FLOAT, [4, 4], typed.flatten().tolist()),
        helper.make_tensor("typed16", TensorProto.FLOAT16, [4],
                           typed16.view(np.uint16).astype(np.int32).tolist()),
        numpy_helper.from_array(big, "big"),
        # Not parameters: a float scalar, and a frozen rotary buffer.
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "eps"),
        numpy_helper.from_array(inv_freq, "rotary.inv_freq"),
    ]
    nodes = [
        # A tied embedding and LM head: wte.weight read twice.
        helper.make_node("Gather", ["wte.weight", "ids"], ["emb"], name="embed"),
        helper.make_node("MatMul", ["emb", "typed"], ["h1"], name="proj"),
        helper.make_node("Add", ["h1", "eps"], ["h2"], name="add_eps"),
        helper.make_node("Gemm", ["h2", "wte.weight"], ["logits"], name="lm_head", transB=1),
        helper.make_node("MatMul", ["x16", "h.0.w"], ["y16a"], name="mm16"),
        helper.make_node("Cast", ["y16a"], ["y16b"], name="to_bf16", to=TensorProto.BFLOAT16),
        helper.make_node("Add", ["y16b", "h.0.b"], ["ybf"], name="add_bf16"),
        helper.make_node("Mul", ["x16", "typed16"], ["y16"], name="mul16"),
        helper.make_node("MatMul", ["xbig", "big"], ["ybig"], name="mmbig"),
        helper.make_node("Constant", [], ["pos"], name="pos",
                         value=numpy_helper.from_array(np.array([[0], [1], [2]], dtype=np.float32))),
        helper.make_node("Mul", ["pos", "rotary.inv_freq"], ["freqs"], name="freqs"),
    ]
    model = make_model(
        nodes,
        [value("ids", TensorProto.INT64, [2]), value("x16", TensorProto.FLOAT16, [3, 4]),
         value("xbig", TensorProto.FLOAT, [1, 300])],
        [value("logits", TensorProto.FLOAT, [2, 8]), value("ybf", TensorProto.BFLOAT16, [3, 4]),
         value("y16", TensorProto.FLOAT16, [3, 4]), value("ybig", TensorProto.FLOAT, [1, 300]),
         value("freqs", TensorProto.FLOAT, [3, 2])],
        inits)
    data = model.SerializeToString()
    with open(os.path.join(out, "params.onnx"), "wb") as f:
        f.write(data)
    for name, raw in [("wte.weight", wte.tobytes()), ("h.0.w", w16.tobytes()),
                      ("h.0.b", b_bf16.tobytes()), ("typed", typed.tobytes()),
                      ("big", big.tobytes())]:
        print(f"PARAM {name} {unique_offset(data, raw)} {len(raw)}")


def external(out):
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((4, 3)).astype(np.float32)
    w2 = rng.standard_normal((3, 5)).astype(np.float32)
    shape = np.array([10], dtype=np.int64)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
         helper.make_node("MatMul", ["h", "w2"], ["h2"], name="mm2"),
         helper.make_node("Reshape", ["h2", "shape"], ["y"], name="reshape")],
        [value("x", TensorProto.FLOAT, [2, 4])],
        [value("y", TensorProto.FLOAT, [10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(shape, "shape")])
    onnx.save_model(model, os.path.join(out, "ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    saved = onnx.load(os.path.join(out, "ext.onnx"), load_external_data=False)
    for t in saved.graph.initializer:
        entries = {e.key: e.value for e in t.external_data}
        assert t.data_location == TensorProto.EXTERNAL and entries["location"] == "weights.bin"
        if t.data_type == TensorProto.FLOAT:
            print(f"PARAM {t.name} {entries.get('offset', '0')} {entries['length']}")


def external_tensor(name, dims, dtype, entries):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for key, val in entries:
        e = t.external_data.add()
        e.key = key
        e.value = val
    return t


def external_errors(out):
    # weights.bin: 64 bytes.
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(np.arange(16, dtype=np.float32).tobytes())

    def save(name, tensor, node):
        out_shape = [2, 3] if node.op_type == "MatMul" else [8]
        model = make_model([node], [value("x", TensorProto.FLOAT, [2, 4])],
                           [value("y", TensorProto.FLOAT, out_shape)], [tensor])
        with open(os.path.join(out, name), "wb") as f:
            f.write(model.SerializeToString())

    mm = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    rs = helper.make_node("Reshape", ["x", "shape"], ["y"], name="rs")
    w = lambda *entries: external_tensor("w", [4, 3], TensorProto.FLOAT, list(entries))
    shape = lambda *entries: external_tensor("shape", [1], TensorProto.INT64, list(entries))
    save("missing-file.onnx", w(("location", "nowhere.bin")), mm)
    save("past-end.onnx", w(("location", "weights.bin"), ("offset", "40")), mm)
    save("bad-length.onnx", w(("location", "weights.bin"), ("length", "44")), mm)
    save("bad-offset.onnx", w(("location", "weights.bin"), ("offset", "0x10")), mm)
    save("no-location.onnx", w(("offset", "0")), mm)
    save("const-past-end.onnx", shape(("location", "weights.bin"), ("offset", "60")), rs)
    save("const-missing-file.onnx", shape(("location", "nowhere.bin")), rs)


def files(out):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                       [value("x", TensorProto.FLOAT, [2, 4])],
                       [value("y", TensorProto.FLOAT, [2, 3])],
                       [numpy_helper.from_array(w, "w")])
    data = model.SerializeToString()
    with open(os.path.join(out, "valid.onnx"), "wb") as f:
        f.write(data)
    # A model is fields 1 (ir_version), 7 (graph), 8 (opset_import) in that
    # order; cutting just before opset_import leaves a ModelProto that parses.
    opset = model.opset_import[0].SerializeToString()
    cut = len(data) - len(opset) - 2
    assert data[cut] == 0x42 and data[cut + 2:] == opset  # tag of field 8, length
    with open(os.path.join(out, "no-opset.onnx"), "wb") as f:
        f.write(data[:cut])
    # Just ir_version: parses, has no graph.
    assert data[0] == 0x08
    with open(os.path.join(out, "no-graph.onnx"), "wb") as f:
        f.write(data[:2])
    with open(os.path.join(out, "garbage.onnx"), "wb") as f:
        f.write(b"\xff\xff\xff\xff not a protobuf")
    with open(os.path.join(out, "empty.onnx"), "wb") as f:
        pass
    print(f"SIZE {len(data)}")

    def save(name, m):
        with open(os.path.join(out, name), "wb") as f:
            f.write(m.SerializeToString())

    # A sequence input (the text format of ONNX 1.12 cannot write one).
    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, [2])
    save("seq-input.onnx", make_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [seq, value("x", TensorProto.FLOAT, [2])], [value("y", TensorProto.FLOAT, [2])], []))
    # raw_data shorter than the shape: a parameter, and an int64 constant.
    short = numpy_helper.from_array(w, "w")
    short.raw_data = short.raw_data[:40]
    save("short-param.onnx", make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        [value("x", TensorProto.FLOAT, [2, 4])], [value("y", TensorProto.FLOAT, [2, 3])], [short]))
    shape = numpy_helper.from_array(np.array([3, 2], dtype=np.int64), "shape")
    shape.raw_data = shape.raw_data[:8]
    save("short-constant.onnx", make_model(
        [helper.make_node("Identity", ["x"], ["y0"], name="id"),
         helper.make_node("Reshape", ["y0", "shape"], ["y"], name="rs")],
        [value("x", TensorProto.FLOAT, [2, 3])], [value("y", TensorProto.FLOAT, [3, 2])], [shape]))

    # Found by test/fuzz (ONNX 1.12's text format cannot write them):
    # a node without outputs, read at output(0) ...
    save("no-output.onnx", make_model(
        [helper.make_node("Constant", [], [], name="c",
                          value=numpy_helper.from_array(np.array([1.0], np.float32))),
         helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [value("x", TensorProto.FLOAT, [2])], [value("y", TensorProto.FLOAT, [2])], []))
    # ... an initializer whose dimensions multiply past 2^63 (8 values) ...
    huge = helper.make_tensor("huge", TensorProto.FLOAT, [8], [0.5] * 8)
    huge.dims[:] = [1 << 20] * 4  # 2^80 elements, past make_tensor's check
    save("huge-initializer.onnx", make_model(
        [helper.make_node("Mul", ["x", "huge"], ["y"], name="mul")],
        [value("x", TensorProto.FLOAT, [2])], [value("y", TensorProto.FLOAT, [2])], [huge]))
    # ... and Expand to a float shape holding NaN and 1e30 (ONNX wants int64;
    # converting them to int64 was undefined behaviour).
    for name, v in (("nan", float("nan")), ("huge", 1e30)):
        fshape = helper.make_tensor("shape", TensorProto.FLOAT, [2], [2.0, v])
        save(f"expand-float-{name}.onnx", make_model(
            [helper.make_node("Expand", ["x", "shape"], ["y"], name="ex")],
            [value("x", TensorProto.FLOAT, [2])], [value("y", TensorProto.FLOAT, [2, 2])],
            [fshape]))


def main():
    kind, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    {"params": params, "external": external, "external-errors": external_errors,
     "files": files}[kind](out)


if __name__ == "__main__":
    main()
