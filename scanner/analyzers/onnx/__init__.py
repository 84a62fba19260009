"""ONNX models: external data, custom operators, anomalies, metadata and graph backdoors.

The registry imports :class:`OnnxAnalyzer` from here; ``onnx`` itself is imported only when the
first ONNX artifact is analyzed.
"""

from scanner.analyzers.onnx.analyzer import OnnxAnalyzer

__all__ = ["OnnxAnalyzer"]
