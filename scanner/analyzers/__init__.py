"""Analyzer registry.

Analyzers are imported lazily, on the first artifact of their format, so a scan of pickles never
imports onnx and ``mlscan --version`` imports nothing heavy. Add a format by writing a module
with an :class:`~scanner.analyzers.interface.Analyzer` subclass and listing it here.
"""

from __future__ import annotations

import importlib
from functools import cache

from scanner.analyzers.interface import Analyzer
from scanner.formats.interface import Format

# (formats handled, "module:Class"). Order matters only for report order.
REGISTRY: tuple[tuple[frozenset[Format], str], ...] = (
    (frozenset({Format.PICKLE}), "scanner.analyzers.pickle:PickleAnalyzer"),
    (frozenset({Format.ZIP}), "scanner.analyzers.archive:ZipAnalyzer"),
    (frozenset({Format.TAR}), "scanner.analyzers.archive:TarAnalyzer"),
    (frozenset({Format.GZIP, Format.BZIP2, Format.XZ, Format.LZMA, Format.ZLIB}),
     "scanner.analyzers.compressed:CompressedAnalyzer"),
    (frozenset({Format.NUMPY}), "scanner.analyzers.numpy_npy:NumpyAnalyzer"),
    (frozenset({Format.TEXT}), "scanner.analyzers.torch:TorchScriptSourceAnalyzer"),
    (frozenset({Format.ONNX}), "scanner.analyzers.onnx:OnnxAnalyzer"),
    (frozenset({Format.SAFETENSORS}), "scanner.analyzers.safetensors:SafetensorsAnalyzer"),
    (frozenset({Format.GGUF}), "scanner.analyzers.gguf:GGUFAnalyzer"),
    (frozenset({Format.JSON}), "scanner.analyzers.keras:KerasConfigAnalyzer"),
    (frozenset({Format.HDF5}), "scanner.analyzers.keras:KerasWeightsAnalyzer"),
    (frozenset({Format.TF_SAVEDMODEL, Format.TF_GRAPHDEF}), "scanner.analyzers.tensorflow:TensorFlowAnalyzer"),
)


@cache
def load_analyzer(dotted: str) -> Analyzer:
    """Import and instantiate one analyzer; import errors propagate to the caller."""
    module_name, _, class_name = dotted.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls()  # type: ignore[no-any-return]


def analyzer_paths_for(fmt: Format) -> list[str]:
    """The registered analyzers for ``fmt``, as import paths (not yet imported)."""
    return [dotted for formats, dotted in REGISTRY if fmt in formats]


def analyzers_for(fmt: Format) -> list[Analyzer]:
    return [load_analyzer(dotted) for dotted in analyzer_paths_for(fmt)]


def known_formats() -> frozenset[Format]:
    out: set[Format] = set()
    for formats, _ in REGISTRY:
        out |= formats
    return frozenset(out)
