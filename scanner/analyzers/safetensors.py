"""safetensors: strict header validation before anything else reads the file.

The format is data-only, so its risks are the loaders' parsers: a header length beyond the file
or absurdly large, offsets pointing outside the data area (out-of-bounds reads), duplicate keys
(the JSON parser keeps one, the Rust one may keep another), overlaps, gaps and trailing bytes that
hide data, and metadata that is not string-to-string. Tensor bytes are never read here.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from typing import Any

from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.finding import Finding, Severity
from scanner.formats.interface import Format

# dtype -> bits per element (safetensors 0.8 dtype names)
DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "E8M0": 8,
              "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
              "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


class SafetensorsAnalyzer(Analyzer):
    name = "safetensors"
    formats = frozenset({Format.SAFETENSORS})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        blob, loc = artifact.blob, artifact.location
        if blob.size < 8:
            yield ctx.finding("MLS-SFT-001", loc, f"file is {blob.size} bytes, shorter than the 8-byte header length")
            return
        (length,) = struct.unpack("<Q", blob.read_at(0, 8))
        if 8 + length > blob.size:
            yield ctx.finding("MLS-SFT-001", loc, f"header claims {length} bytes but the file has "
                              f"{blob.size - 8} after the length field: a reader trusting it reads out of bounds",
                              severity=Severity.CRITICAL)
            return
        if length > ctx.limits.header_bytes:
            yield ctx.finding("MLS-SFT-002", loc, f"header of {length} bytes exceeds the {ctx.limits.header_bytes}"
                              "-byte limit (the reference loader caps headers at 100 MB); not parsed")
            return
        raw = blob.read_at(8, length)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except _Duplicate as exc:
            yield ctx.finding("MLS-SFT-004", loc, f"key {str(exc)!r} appears more than once in the header; "
                              "JSON readers disagree on which entry wins")
            return
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            yield ctx.finding("MLS-SFT-003", loc, f"header is not valid UTF-8 JSON: {type(exc).__name__}: {str(exc)[:120]}")
            return
        if not isinstance(header, dict):
            yield ctx.finding("MLS-SFT-003", loc, f"header is a JSON {type(header).__name__}, not an object")
            return
        yield from self._check(header, 8 + length, blob.size, artifact, ctx)

    def _check(self, header: dict[str, Any], data_start: int, size: int, artifact: Artifact,
               ctx: ScanContext) -> Iterator[Finding]:
        loc = artifact.location
        data_size = size - data_start
        metadata = header.pop("__metadata__", None)
        if metadata is not None and (not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
            yield ctx.finding("MLS-SFT-005", loc.at(node="__metadata__"),
                              "__metadata__ must map strings to strings; nested or non-string values are "
                              "rejected by the reference loader and can smuggle structured data")
        spans: list[tuple[int, int, str]] = []
        for name, info in header.items():
            node = loc.at(node=name)
            if not isinstance(info, dict) or not TENSOR_FIELDS <= set(info):
                yield ctx.finding("MLS-SFT-006", node, f"tensor entry is not an object with {sorted(TENSOR_FIELDS)}")
                continue
            if set(info) - TENSOR_FIELDS:
                yield ctx.finding("MLS-SFT-006", node, f"unknown tensor fields {sorted(set(info) - TENSOR_FIELDS)}")
            dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
            if dtype not in DTYPE_BITS:
                yield ctx.finding("MLS-SFT-007", node, f"unknown dtype {dtype!r}")
                continue
            if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                    for d in shape)):
                yield ctx.finding("MLS-SFT-006", node, f"shape {str(shape)[:80]} is not a list of non-negative integers")
                continue
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                    isinstance(o, int) and not isinstance(o, bool) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
                yield ctx.finding("MLS-SFT-008", node, f"data_offsets {str(offsets)[:80]} are not [begin, end] "
                                  "with 0 <= begin <= end", severity=Severity.HIGH)
                continue
            begin, end = offsets
            if end > data_size:
                yield ctx.finding("MLS-SFT-008", node, f"data_offsets [{begin}, {end}] end past the "
                                  f"{data_size}-byte data area: an out-of-bounds read for a trusting reader")
                continue
            expected_bits = math.prod(shape) * DTYPE_BITS[dtype]
            if expected_bits != (end - begin) * 8:
                yield ctx.finding("MLS-SFT-009", node, f"shape {shape} x {dtype} needs {expected_bits / 8:g} "
                                  f"bytes but data_offsets span {end - begin}")
            spans.append((begin, end, name))
        yield from self._layout(spans, data_size, artifact, ctx)
        yield from self._differential(artifact, ctx)

    def _layout(self, spans: list[tuple[int, int, str]], data_size: int, artifact: Artifact,
                ctx: ScanContext) -> Iterator[Finding]:
        position = 0
        for begin, end, name in sorted(spans):
            if begin < position:
                yield ctx.finding("MLS-SFT-010", artifact.location.at(node=name),
                                  f"bytes [{begin}, {end}) overlap the previous tensor (ends at {position})")
            elif begin > position:
                yield ctx.finding("MLS-SFT-011", artifact.location.at(node=name),
                                  f"{begin - position} unreferenced byte(s) before this tensor hide data no "
                                  "reader accounts for")
            position = max(position, end)
        if position < data_size:
            yield ctx.finding("MLS-SFT-011", artifact.location,
                              f"{data_size - position} byte(s) after the last tensor are not referenced by the header")

    @staticmethod
    def _differential(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """The reference parser must agree with ours on top-level files (parser differential)."""
        if artifact.path is None:
            return
        try:
            from safetensors import safe_open
        except ImportError:
            return
        try:
            with safe_open(str(artifact.path), framework="numpy") as handle:
                list(handle.keys())
        except ImportError:
            return
        except Exception as exc:  # noqa: BLE001 - any rejection is the finding
            yield ctx.finding("MLS-SFT-012", artifact.location,
                              f"the safetensors library rejects a file mlscan's parser accepted: {str(exc)[:200]}")
