"""Schema-guided protobuf walk for files the protobuf library refuses.

When ``onnx.load`` fails, the reason matters: Python protobuf (upb) stops at 100 nested message
levels, while other runtimes use other limits, so a model nested just past that limit is a
parser-differential attack (some loaders accept it, the scanner cannot read it), not mere
corruption. This walker follows only message-typed fields from onnx's own descriptors, reading
field headers through the blob (never the whole payload), with explicit stacks and a field budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.core.blob import Blob
from scanner.formats.protowire import LEN, WireError, iter_fields


@dataclass(frozen=True)
class WireReport:
    max_depth: int  # message levels, the ModelProto itself is level 1
    error: str | None  # first wire-format error met, if any
    exhausted: bool  # stopped at the field budget


def _message_fields(descriptor: Any, cache: dict[str, dict[int, Any]]) -> dict[int, Any]:
    key = descriptor.full_name
    if key not in cache:
        cache[key] = {f.number: f.message_type for f in descriptor.fields if f.message_type is not None}
    return cache[key]


def measure(blob: Blob, max_fields: int = 2_000_000, depth_cap: int = 10_000) -> WireReport:
    """Deepest message nesting in an ONNX ModelProto, without building any message."""
    import onnx

    cache: dict[str, dict[int, Any]] = {}
    stack: list[tuple[int, int, Any, int]] = [(0, blob.size, onnx.ModelProto.DESCRIPTOR, 1)]
    deepest = 0
    budget = max_fields
    while stack:
        start, end, descriptor, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth >= depth_cap:
            continue
        fields = _message_fields(descriptor, cache)
        try:
            for item in iter_fields(blob, start, end, max_fields=budget):
                budget -= 1
                sub = fields.get(item.number)
                if sub is not None and item.wire_type == LEN:
                    stack.append((item.offset, item.offset + item.value, sub, depth + 1))
        except WireError as exc:
            return WireReport(deepest, str(exc), budget <= 0)
        if budget <= 0:
            return WireReport(deepest, None, True)
    return WireReport(deepest, None, False)
