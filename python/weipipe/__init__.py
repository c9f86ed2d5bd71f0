"""weipipe Python side: test-model builders and ONNX export helpers."""
