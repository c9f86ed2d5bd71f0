"""Turn an ONNX text model into a binary one, with what the text format of
ONNX 1.12 (the importer's parser) cannot write: string escapes (a JSON model
property) and dotted names (PyTorch's `layer.weight`).

  text_model.py IN.onnxtext OUT.onnx [--metadata KEY=VALUE]... [--rename OLD=NEW]...
                [--kind INITIALIZER=KIND]... [--fx OUTPUT=FX_NODE]...

--rename renames an initializer, node inputs and outputs, and graph inputs
and outputs alike. --kind records an initializer's PyTorch kind (PARAMETER,
BUFFER, CONSTANT_TENSOR) as torch's dynamo exporter does: in the
metadata_props of a value_info (after renaming). --fx records the FX node
of the node that computes OUTPUT as the dynamo exporter does (metadata
pkg.torch.onnx.fx_node).
"""
import argparse

import onnx
import onnx.helper
import onnx.parser

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("out")
ap.add_argument("--metadata", action="append", default=[])
ap.add_argument("--rename", action="append", default=[])
ap.add_argument("--kind", action="append", default=[])
ap.add_argument("--fx", action="append", default=[])
a = ap.parse_args()
with open(a.src) as f:
    model = onnx.parser.parse_model(f.read())
for kv in a.metadata:
    key, value = kv.split("=", 1)
    prop = model.metadata_props.add()
    prop.key, prop.value = key, value
names = dict(kv.split("=", 1) for kv in a.rename)
g = model.graph
for t in g.initializer:
    t.name = names.get(t.name, t.name)
for n in g.node:
    n.input[:] = [names.get(x, x) for x in n.input]
    n.output[:] = [names.get(x, x) for x in n.output]
for v in list(g.input) + list(g.output):
    v.name = names.get(v.name, v.name)
inits = {t.name: t for t in g.initializer}
for kv in a.kind:
    name, kind = kv.split("=", 1)
    t = inits[name]
    vi = onnx.helper.make_tensor_value_info(name, t.data_type, list(t.dims))
    prop = vi.metadata_props.add()
    prop.key, prop.value = "pkg.torch.export.graph_signature.InputSpec.kind", kind
    g.value_info.append(vi)
for kv in a.fx:
    out, fx = kv.split("=", 1)
    node = next(n for n in g.node if out in n.output)
    prop = node.metadata_props.add()
    prop.key, prop.value = "pkg.torch.onnx.fx_node", fx
onnx.save(model, a.out)
