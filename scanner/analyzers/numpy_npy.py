"""NumPy ``.npy``: a bounded header parse; an object dtype means a pickle follows, which is
handed to the pickle analyzer (numpy.load with allow_pickle=True would unpickle it)."""

from __future__ import annotations

import ast
import struct
from collections.abc import Iterator

from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.finding import Finding
from scanner.formats.interface import Format, Sniffed

MAX_HEADER = 10_000   # numpy's own max_header_size default


def _has_object(descr: object) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, (list, tuple)):
        return any(_has_object(part) for part in descr)
    return False


def _itemsize(descr: object) -> int | None:
    if isinstance(descr, str):
        code = descr.lstrip("<>|=")
        kind, digits = code[:1], code[1:]
        if not digits.isdigit():
            return None
        return int(digits) * (4 if kind == "U" else 1)
    return None


class NumpyAnalyzer(Analyzer):
    name = "numpy"
    formats = frozenset({Format.NUMPY})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        blob = artifact.blob
        head = blob.read_at(0, 12)
        major = head[6] if len(head) > 6 else 0
        if major == 1 and len(head) >= 10:
            (length,), start = struct.unpack_from("<H", head, 8), 10
        elif major in (2, 3) and len(head) >= 12:
            (length,), start = struct.unpack_from("<I", head, 8), 12
        else:
            yield ctx.finding("MLS-NPY-002", artifact.location, f"unknown .npy format version {major}")
            return
        if length > MAX_HEADER or start + length > blob.size:
            yield ctx.finding("MLS-NPY-002", artifact.location,
                              f"header length {length} exceeds {MAX_HEADER} or the file size")
            return
        try:
            header = ast.literal_eval(blob.read_at(start, length).decode("latin-1"))
            descr, shape = header["descr"], header["shape"]
        except (ValueError, SyntaxError, KeyError, TypeError, RecursionError, MemoryError) as exc:
            yield ctx.finding("MLS-NPY-002", artifact.location, f"header is not a valid dict literal: {exc}")
            return
        data_start = start + length
        if _has_object(descr):
            yield ctx.finding("MLS-NPY-001", artifact.location,
                              f"dtype {descr!r} holds Python objects: the array data is a pickle that "
                              "numpy.load with allow_pickle=True unpickles. It is analyzed below.")
            yield Artifact(artifact.location.child("<object-array>"), blob.slice(data_start, blob.size - data_start),
                           "object-array.pkl", artifact.depth + 1, Sniffed(Format.PICKLE, "npy object array"))
            return
        itemsize = _itemsize(descr)
        if itemsize is not None and isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape):
            count = 1
            for dim in shape:
                count *= dim
            expected = count * itemsize
            actual = blob.size - data_start
            if expected != actual:
                yield ctx.finding("MLS-NPY-002", artifact.location,
                                  f"shape {shape} x {itemsize}-byte items needs {expected} bytes but "
                                  f"{actual} follow the header"
                                  + (" (hidden trailing data)" if actual > expected else ""))
