"""Scoring: model backends (TensorFlow, ONNX Runtime), ONNX conversion, and the batch scorer."""
