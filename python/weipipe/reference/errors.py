"""The one exception type the reference trainer raises for bad input."""
from __future__ import annotations


class RefError(Exception):
    """Bad input (data, model name, ONNX file, options): printed as ``error: ...``, exit status 1."""
