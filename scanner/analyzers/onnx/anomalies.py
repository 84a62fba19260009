"""Structural anomalies: shapes that cannot match their data, memory bombs, nesting, versions.

These are the parser/runtime attack surface (#11): loaders allocate from declared shapes, and
runtimes allocate ``ConstantOfShape``/``Expand``/``Tile`` outputs from constant shape inputs
before anything checks them. Element counts are computed with Python integers (no overflow),
and constants are read only when small (see :mod:`consts`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

from scanner.analyzers.onnx.consts import ConstTable
from scanner.analyzers.onnx.context import OnnxScan, shorten
from scanner.analyzers.onnx.external import ELEMENT_BITS, EXTERNAL, expected_bytes
from scanner.analyzers.onnx.knowledge import normalise_domain
from scanner.analyzers.onnx.walk import node_label, qualify, text
from scanner.core.finding import Finding, Severity

INT64_MAX = (1 << 63) - 1

# data_type -> (typed field, stored values per element) for the types with a 1:1 typed field.
TYPED_FIELDS = {
    1: ("float_data", 1), 14: ("float_data", 2), 6: ("int32_data", 1), 5: ("int32_data", 1),
    3: ("int32_data", 1), 4: ("int32_data", 1), 2: ("int32_data", 1), 9: ("int32_data", 1),
    10: ("int32_data", 1), 16: ("int32_data", 1), 7: ("int64_data", 1), 8: ("string_data", 1),
    11: ("double_data", 1), 15: ("double_data", 2), 12: ("uint64_data", 1), 13: ("uint64_data", 1),
}
DATA_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def tensor_problem(tensor: Any) -> str | None:
    """Why a tensor's declared shape cannot match its data, or None."""
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        return f"negative dimension in {dims}"
    numel = math.prod(dims)
    if numel > INT64_MAX:
        return f"dims {dims} overflow int64 ({numel} elements)"
    if tensor.data_location == EXTERNAL:
        return None  # the external-data check compares against the file
    if tensor.data_type not in ELEMENT_BITS and tensor.data_type != 8:
        return f"unknown data_type {tensor.data_type}" if tensor.data_type != 0 or numel else None
    if tensor.HasField("raw_data"):
        need = expected_bytes(tensor)
        have = len(tensor.raw_data)
        if need is not None and have != need:
            return f"dims {_dims(dims)} need {need} bytes of raw_data but {have} are stored"
        return None
    field, per = TYPED_FIELDS.get(tensor.data_type, ("", 0))
    counts = {name: len(getattr(tensor, name)) for name in DATA_FIELDS}
    stored = sum(counts.values())
    if not field:
        return None  # sub-byte and float8 typed storage is packed; raw_data is the norm there
    if stored == 0:
        return None if numel == 0 else f"dims {_dims(dims)} declare {numel} elements but the tensor has no data"
    if counts[field] != stored:
        return f"data stored in fields its type does not use ({', '.join(k for k, v in counts.items() if v)})"
    if counts[field] != numel * per:
        return f"dims {_dims(dims)} declare {numel} elements but {counts[field] // per} are stored"
    return None


def _dims(dims: list[int]) -> str:
    return str(dims) if len(dims) <= 8 else f"[{', '.join(map(str, dims[:8]))}, ...]"


class AnomalyCheck:
    def __init__(self, scan: OnnxScan) -> None:
        self.scan = scan
        self.kb = scan.kb
        self.consts = ConstTable()
        for scope in scan.view.scopes:
            self.consts.build(scope)

    def run(self) -> Iterator[Finding]:
        yield from self.limits()
        yield from self.tensors()
        yield from self.bombs()
        yield from self.versions()
        yield from self.unknown_fields()

    def limits(self) -> Iterator[Finding]:
        view = self.scan.view
        if view.truncated:
            yield self.scan.finding("MLS-GEN-012", f"the model has more than "
                                    f"{view.max_nodes} nodes across its graphs; the rest was not "
                                    "analyzed (raise onnx_nodes only for a trusted source)")
        if view.too_deep:
            yield self.scan.finding("MLS-ONX-221", f"subgraphs nested deeper than {view.max_depth} "
                                    f"levels were not analyzed: {shorten(view.too_deep, 3)}",
                                    view.too_deep[0], Severity.HIGH)
        elif view.deepest > self.kb.max_graph_depth:
            yield self.scan.finding("MLS-ONX-221", f"subgraphs are nested {view.deepest} levels deep "
                                    f"(real models stay below {self.kb.max_graph_depth})")

    def tensors(self) -> Iterator[Finding]:
        problems: list[tuple[str, str]] = []
        for where, tensor in self.scan.view.tensors():
            problem = tensor_problem(tensor)
            if problem:
                problems.append((where, problem))
        for sparse_where, problem in self.sparse():
            problems.append((sparse_where, problem))
        if problems:
            listing = [f"{w}: {p}" for w, p in problems]
            yield self.scan.finding("MLS-ONX-220", f"{len(problems)} tensor(s) with a shape that cannot "
                                    f"match the data: {shorten(listing, 4)}", problems[0][0])

    def sparse(self) -> Iterator[tuple[str, str]]:
        for scope in self.scan.view.scopes:
            if scope.is_function:
                continue
            for sparse in scope.graph.sparse_initializer:
                dims = list(sparse.dims)
                where = f"{scope.path}: sparse initializer '{text(sparse.values.name)}'"
                if any(d < 0 for d in dims) or math.prod(dims) > INT64_MAX:
                    yield where, f"invalid dense shape {_dims(dims)}"
                    continue
                nnz = sparse.values.dims[0] if len(sparse.values.dims) == 1 else None
                idx = list(sparse.indices.dims)
                if nnz is None:
                    yield where, "values must be a 1-D tensor"
                elif nnz > math.prod(dims):
                    yield where, f"{nnz} non-zero values for a shape of {math.prod(dims)} elements"
                elif idx and (idx[0] != nnz or (len(idx) == 2 and idx[1] != len(dims)) or len(idx) > 2):
                    yield where, f"indices shape {idx} does not fit {nnz} values of rank {len(dims)}"

    def bombs(self) -> Iterator[Finding]:
        limit = self.kb.memory_bomb_elements
        for scope, index, node in self.scan.view.nodes():
            if normalise_domain(node.domain) != "":
                continue
            try:
                claim = self.claimed_elements(scope.path, node)
            except (OverflowError, ValueError):  # inf/nan constants: an unbounded request
                claim = (INT64_MAX, "non-finite constant")
            except (TypeError, IndexError):  # malformed attributes: the runtime rejects the node
                claim = None
            if claim is None:
                continue
            where = qualify(scope.path, node_label(node, index))
            if claim[0] < 0:
                yield self.scan.finding(
                    "MLS-ONX-220", f"{node.op_type} multiplies its input size by {claim[1]} (limit "
                    f"{self.kb.memory_bomb_scale:g}x); the runtime allocates the result when the node runs",
                    where)
            elif claim[0] > limit:
                yield self.scan.finding(
                    "MLS-ONX-220", f"{node.op_type} asks for {claim[0]:,} elements ({claim[1]}); the "
                    f"runtime allocates that when the node runs (limit {limit:,})", where)

    def const_ints(self, path: str, node: Any, position: int) -> list[int] | None:
        if position >= len(node.input) or not node.input[position]:
            return None
        value = self.consts.get(path, node.input[position])
        return value.ints() if value is not None else None

    def claimed_elements(self, path: str, node: Any) -> tuple[int, str] | None:
        op = node.op_type
        if op in ("ConstantOfShape", "Expand"):
            shape = self.const_ints(path, node, 0 if op == "ConstantOfShape" else 1)
            if shape is not None:
                return math.prod(max(d, 1) if op == "Expand" else max(d, 0) for d in shape), f"shape {shape}"
        elif op == "Tile":
            repeats = self.const_ints(path, node, 1)
            if repeats is not None:
                base = self.consts.get(path, node.input[0])
                total = math.prod(max(r, 0) for r in repeats) * (base.numel if base else 1)
                return total, f"repeats {repeats}"
        elif op in ("RandomNormal", "RandomUniform"):
            for attr in node.attribute:
                if attr.name == "shape":
                    return math.prod(max(d, 0) for d in attr.ints), f"shape {list(attr.ints)}"
        elif op == "Range":
            values = [self.consts.get(path, name) for name in node.input[:3]]
            if len(values) == 3 and all(v is not None and v.numel == 1 for v in values):
                start, stop, delta = (v.values[0] for v in values if v is not None)
                if delta != 0:
                    return max(0, math.ceil((stop - start) / delta)), f"range({start}, {stop}, {delta})"
        elif op == "OneHot":
            depth = self.const_ints(path, node, 1)
            if depth:
                return abs(depth[0]), f"depth {depth[0]}"
        elif op == "Pad":
            pads = self.const_ints(path, node, 1) or [
                int(v) for a in node.attribute if a.name == "pads" for v in a.ints]
            if pads:
                return max(pads), f"pads {pads[:8]}"
        elif op in ("Resize", "Upsample"):
            return self.resize_claim(path, node)
        return None

    def resize_claim(self, path: str, node: Any) -> tuple[int, str] | None:
        positions = (1,) if node.op_type == "Upsample" or len(node.input) == 2 else (2, 3)
        for position in positions:
            if position >= len(node.input) or not node.input[position]:
                continue
            value = self.consts.get(path, node.input[position])
            if value is None or not value.values:
                continue
            if position == 3:  # sizes
                ints = value.ints() or []
                return math.prod(max(d, 0) for d in ints), f"sizes {ints[:8]}"
            factor = math.prod(abs(float(v)) for v in value.values)
            if factor > self.kb.memory_bomb_scale:
                # Scales multiply the (unknown) input size: reported as a growth factor (-1).
                return -1, f"{factor:g} (scales {list(value.values)[:8]})"
        return None

    def versions(self) -> Iterator[Finding]:
        import onnx
        from onnx import helper

        model = self.scan.model
        notes: list[str] = []
        if model.ir_version < 3:
            notes.append(f"ir_version {model.ir_version} (ONNX defines 3..{onnx.IR_VERSION})")
        severity = Severity.LOW
        if model.ir_version > onnx.IR_VERSION:
            notes.append(f"ir_version {model.ir_version} is newer than this scanner's onnx "
                         f"({onnx.IR_VERSION}): fields it adds are unknown to mlscan")
            severity = Severity.MEDIUM
        latest: tuple[object, ...] = tuple(helper.VERSION_TABLE[-1])
        maxima = {"": int(latest[2]), "ai.onnx.ml": int(latest[3]),  # type: ignore[call-overload]
                  "ai.onnx.training": int(latest[4])}  # type: ignore[call-overload]
        seen: Counter[str] = Counter()
        for entry in model.opset_import:
            domain = normalise_domain(entry.domain)
            seen[domain] += 1
            top = maxima.get(domain)
            if top is not None and not 1 <= entry.version <= top:
                notes.append(f"opset {domain or 'ai.onnx'} version {entry.version} (known 1..{top})")
                if entry.version > top:
                    severity = Severity.MEDIUM
        duplicates = [d or "ai.onnx" for d, n in seen.items() if n > 1]
        if duplicates:
            notes.append(f"duplicate opset_import domains {duplicates} (runtimes pick different ones)")
        declared = set(seen)
        for fn in model.functions:
            declared.update(normalise_domain(o.domain) for o in fn.opset_import)
        declared.update(normalise_domain(f.domain) for f in model.functions)
        undeclared = sorted({normalise_domain(n.domain) or "ai.onnx" for _, _, n in self.scan.view.nodes()
                             if normalise_domain(n.domain) not in declared})
        if undeclared:
            notes.append(f"node domains not declared in opset_import: {shorten(undeclared)}")
        if notes:
            yield self.scan.finding("MLS-ONX-230", "; ".join(notes), severity=severity)

    def unknown_fields(self) -> Iterator[Finding]:
        """Protobuf fields this onnx does not know: content mlscan cannot interpret."""
        try:
            from google.protobuf.unknown_fields import UnknownFieldSet
        except ImportError:  # pragma: no cover - very old protobuf
            return
        hits: list[str] = []
        undecodable: list[str] = []
        messages: list[tuple[str, Any]] = [("model", self.scan.model)]
        for scope in self.scan.view.scopes:
            messages.append((scope.path, scope.graph))
            for i, node in enumerate(scope.graph.node):
                where = qualify(scope.path, node_label(node, i))
                messages.append((where, node))
                if any(isinstance(v, bytes) for v in (node.name, node.op_type, node.domain, *node.input,
                                                       *node.output)):
                    undecodable.append(where)
        if undecodable:
            yield self.scan.finding("MLS-ONX-230", "node names, operators or tensor names that are not "
                                    "valid UTF-8 (Python and C++ loaders read them differently): "
                                    f"{shorten(undecodable, 4)}", undecodable[0], Severity.MEDIUM)
        for where, message in messages:
            try:
                numbers = sorted({f.field_number for f in UnknownFieldSet(message)})
            except Exception:  # noqa: BLE001 - an exotic protobuf build; nothing to report
                return
            if numbers:
                hits.append(f"{where} fields {numbers[:6]}")
        if hits:
            yield self.scan.finding("MLS-ONX-230", f"protobuf fields unknown to onnx "
                                    f"{_onnx_version()}: {shorten(hits, 4)}; a newer runtime may "
                                    "interpret them", severity=Severity.MEDIUM)


def _onnx_version() -> str:
    import onnx

    return str(onnx.__version__)


def check(scan: OnnxScan) -> Iterator[Finding]:
    yield from AnomalyCheck(scan).run()
