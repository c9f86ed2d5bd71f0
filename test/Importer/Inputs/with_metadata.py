"""Turn an ONNX text model into a binary one with a model property.

  with_metadata.py IN.onnxtext OUT.onnx KEY VALUE

(The ONNX 1.12 text parser the importer uses has no string escapes, so a JSON
value cannot be written in the text format itself.)
"""
import sys

import onnx
import onnx.parser

src, out, key, value = sys.argv[1:]
with open(src) as f:
    model = onnx.parser.parse_model(f.read())
prop = model.metadata_props.add()
prop.key, prop.value = key, value
onnx.save(model, out)
