"""Small constant values (shapes, axes, indices, thresholds) read from initializers and Constant
nodes, with a tiny folder for the few ops exporters put between a constant and its use.

Only tensors with at most :data:`MAX_ELEMENTS` elements whose data matches their declared shape
are decoded, so a crafted tensor cannot make this allocate. Nothing is evaluated beyond
Identity/Cast/Concat/(Un)Squeeze/Reshape and elementwise Add/Sub/Mul/Div on such values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ELEMENTS = 4096


@dataclass(frozen=True)
class Const:
    values: tuple[float, ...]
    dims: tuple[int, ...]

    def ints(self) -> list[int] | None:
        try:
            return [int(v) for v in self.values]
        except (OverflowError, ValueError):
            return None

    @property
    def numel(self) -> int:
        return len(self.values)


def decode_tensor(tensor: Any) -> Const | None:
    """The values of a small, well-formed numeric tensor, or None."""
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims):
        return None
    count = 1
    for d in dims:
        count *= d
    if count > MAX_ELEMENTS or tensor.data_location == 1 or tensor.data_type in (0, 8):
        return None
    try:
        from onnx import numpy_helper

        array = numpy_helper.to_array(tensor)
        if array.size != count:
            return None
        flat = array.reshape(-1)
        if flat.dtype.kind in "biu":
            values: tuple[float, ...] = tuple(int(v) for v in flat.tolist())
        elif flat.dtype.kind == "f":
            values = tuple(float(v) for v in flat.tolist())
        else:
            return None
    except Exception:  # noqa: BLE001 - malformed tensors are reported by anomalies, not here
        return None
    return Const(values, dims)


def constant_node_value(node: Any) -> Const | None:
    """The value of a ``Constant`` node, from whichever attribute carries it."""
    for attr in node.attribute:
        if attr.name == "value" and attr.HasField("t"):
            return decode_tensor(attr.t)
        if attr.name == "value_int":
            return Const((int(attr.i),), ())
        if attr.name == "value_ints" and len(attr.ints) <= MAX_ELEMENTS:
            return Const(tuple(int(v) for v in attr.ints), (len(attr.ints),))
        if attr.name == "value_float":
            return Const((float(attr.f),), ())
        if attr.name == "value_floats" and len(attr.floats) <= MAX_ELEMENTS:
            return Const(tuple(float(v) for v in attr.floats), (len(attr.floats),))
    return None


def _attr_int(node: Any, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def fold(node: Any, inputs: list[Const | None]) -> Const | None:
    """Fold the few shape-plumbing ops between a constant and its consumer."""
    op = node.op_type
    if op == "Constant":
        return constant_node_value(node)
    if not inputs or inputs[0] is None:
        return None
    first = inputs[0]
    if op in ("Identity", "Cast", "Squeeze", "Unsqueeze", "Flatten", "Reshape"):
        if op == "Reshape":
            return Const(first.values, (first.numel,))
        return first if op in ("Identity", "Cast") else Const(first.values, (first.numel,))
    if op == "Concat":
        if any(i is None for i in inputs) or _attr_int(node, "axis", 0) not in (0, -1):
            return None
        values: tuple[float, ...] = ()
        for item in inputs:
            assert item is not None
            values += item.values
        return Const(values, (len(values),)) if len(values) <= MAX_ELEMENTS else None
    if op in ("Add", "Sub", "Mul", "Div") and len(inputs) == 2 and inputs[1] is not None:
        a, b = first.values, inputs[1].values
        if len(a) != len(b) and 1 not in (len(a), len(b)):
            return None
        n = max(len(a), len(b))
        out: list[float] = []
        for i in range(n):
            x, y = a[i % len(a)], b[i % len(b)]
            if op == "Add":
                out.append(x + y)
            elif op == "Sub":
                out.append(x - y)
            elif op == "Mul":
                out.append(x * y)
            else:
                if y == 0:
                    return None
                out.append(x // y if isinstance(x, int) and isinstance(y, int) else x / y)
        dims = first.dims if len(a) >= len(b) else inputs[1].dims
        return Const(tuple(out), dims)
    return None


class ConstTable:
    """Constant values by tensor name, per scope; subgraphs see their enclosing scopes."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Const]] = {}
        self._parents: dict[str, str | None] = {}

    def build(self, scope: Any) -> None:
        table: dict[str, Const] = {}
        self._tables[scope.path] = table
        self._parents[scope.path] = scope.parent.path if scope.parent is not None else None
        graph = scope.graph
        if not scope.is_function:
            for tensor in graph.initializer:
                value = decode_tensor(tensor)
                if value is not None:
                    table[tensor.name] = value
        for node in graph.node:
            if node.op_type in ("Constant", "Identity", "Cast", "Concat", "Squeeze", "Unsqueeze",
                                "Flatten", "Reshape", "Add", "Sub", "Mul", "Div") and len(node.output) == 1:
                if node.domain not in ("", "ai.onnx"):
                    continue
                value = fold(node, [self.get(scope.path, name) for name in node.input])
                if value is not None:
                    table[node.output[0]] = value

    def get(self, path: str | None, name: str) -> Const | None:
        while path is not None:
            table = self._tables.get(path)
            if table is not None and name in table:
                return table[name]
            path = self._parents.get(path)
        return None
