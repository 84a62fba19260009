"""TensorFlow SavedModel and frozen GraphDef: every op in every graph and in the function
library (TF2 keeps almost everything in functions), read from the protobuf wire format with
bounds checks — no TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scanner.analyzers.interface import Analyzer, Artifact, LimitExceeded, ScanContext
from scanner.core.blob import Blob
from scanner.core.finding import Finding
from scanner.core.tomlcompat import load_toml
from scanner.formats.interface import Format
from scanner.formats.protowire import LEN, WireError, iter_fields

MAX_NAME = 4096
MAX_NODES = 2_000_000


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    attrs: dict[str, bytes]
    where: str


@lru_cache(maxsize=1)
def _policy() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    from signatures import data_dir

    data = load_toml(data_dir() / "tensorflow.toml")
    by_op = {op: rule for rule, ops in data["rules"].items() for op in ops}
    return by_op, data["conditional"]


class _Walker:
    def __init__(self, blob: Blob) -> None:
        self.blob = blob
        self.count = 0

    def text(self, offset: int, length: int) -> str:
        return self.blob.read_at(offset, min(length, MAX_NAME)).decode("utf-8", errors="replace")

    def fields(self, start: int, length: int) -> Iterator[Any]:
        return iter_fields(self.blob, start, start + length)

    def node(self, start: int, length: int, where: str) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise LimitExceeded("MLS-GEN-012", f"more than {MAX_NODES} graph nodes; the rest were not checked")
        name = op = ""
        attrs: dict[str, bytes] = {}
        for f in self.fields(start, length):
            if f.wire_type != LEN:
                continue
            if f.number == 1:
                name = self.text(f.offset, f.value)
            elif f.number == 2:
                op = self.text(f.offset, f.value)
            elif f.number == 5:
                key, value = self.attr_entry(f.offset, f.value)
                attrs[key] = value
        return Node(name, op, attrs, where)

    def attr_entry(self, start: int, length: int) -> tuple[str, bytes]:
        key, value = "", b""
        for f in self.fields(start, length):
            if f.wire_type == LEN and f.number == 1:
                key = self.text(f.offset, f.value)
            elif f.wire_type == LEN and f.number == 2:
                value = self.attr_strings(f.offset, f.value)
        return key, value

    def attr_strings(self, start: int, length: int) -> bytes:
        """AttrValue.s, or the strings of AttrValue.list.s, joined (for URL/path checks)."""
        out = []
        for f in self.fields(start, length):
            if f.wire_type != LEN:
                continue
            if f.number == 2:
                out.append(self.blob.read_at(f.offset, min(f.value, MAX_NAME)))
            elif f.number == 1:
                out.extend(self.blob.read_at(g.offset, min(g.value, MAX_NAME))
                           for g in self.fields(f.offset, f.value) if g.wire_type == LEN and g.number == 2)
        return b"\n".join(out)

    def graph(self, start: int, length: int, where: str) -> Iterator[Node]:
        for f in self.fields(start, length):
            if f.wire_type != LEN:
                continue
            if f.number == 1:
                yield self.node(f.offset, f.value, where)
            elif f.number == 2:
                yield from self.library(f.offset, f.value, where)

    def library(self, start: int, length: int, where: str) -> Iterator[Node]:
        for f in self.fields(start, length):
            if f.wire_type == LEN and f.number == 1:
                fname = ""
                for g in self.fields(f.offset, f.value):
                    if g.wire_type == LEN and g.number == 1:
                        fname = next((self.text(h.offset, h.value) for h in self.fields(g.offset, g.value)
                                      if h.wire_type == LEN and h.number == 1), "")
                    elif g.wire_type == LEN and g.number == 3:
                        yield self.node(g.offset, g.value, f"{where} function {fname}")

    def saved_model(self) -> Iterator[Node]:
        for index, f in enumerate(f for f in self.fields(0, self.blob.size) if f.number == 2 and f.wire_type == LEN):
            for g in self.fields(f.offset, f.value):
                if g.number == 2 and g.wire_type == LEN:
                    yield from self.graph(g.offset, g.value, f"meta_graph {index}")


class TensorFlowAnalyzer(Analyzer):
    name = "tensorflow"
    formats = frozenset({Format.TF_SAVEDMODEL, Format.TF_GRAPHDEF})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        from scanner.formats.sniff import sniff

        walker = _Walker(artifact.blob)
        by_op, conditional = _policy()
        is_saved_model = (artifact.format_hint or sniff(artifact.blob)).format is Format.TF_SAVEDMODEL
        nodes = walker.saved_model() if is_saved_model else walker.graph(0, artifact.blob.size, "graph")
        try:
            for node in nodes:
                rule = by_op.get(node.op)
                detail = ""
                cond = conditional.get(node.op)
                if cond is not None:
                    value = node.attrs.get(cond["attr"], b"")
                    if value and value.decode("utf-8", "replace").startswith(cond["prefix"]):
                        rule, detail = cond["rule"], f" with {cond['attr']}={value[:200].decode('utf-8', 'replace')!r}"
                if rule:
                    yield ctx.finding(rule, artifact.location.at(node=f"{node.where}/{node.name}"),
                                      f"op {node.op}{detail} in {node.where} (node {node.name!r})")
        except WireError as exc:
            yield ctx.finding("MLS-TFS-005", artifact.location,
                              f"protobuf structure is corrupt: {exc}; ops after this point were not checked")
