"""Enumerate everything in an ONNX model that a check must see.

Threats hide where naive walkers do not look: ``If``/``Loop``/``Scan`` bodies (node attributes
of type GRAPH/GRAPHS, nested), model-local functions (``ModelProto.functions``), training
graphs (``training_info``), sparse initializers and tensors stored in node attributes
(``Constant.value``). :class:`ModelView` lists every graph-like scope once, with a readable path
for evidence, and yields every node and every tensor from all of them.

The walk is iterative (no Python recursion on attacker-controlled depth) and bounded by the
node-visit and nesting limits; what is beyond a limit is recorded, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scope:
    """A graph or function body. ``depth`` counts subgraph nesting (0 = top level)."""

    path: str
    graph: Any  # onnx GraphProto or FunctionProto
    kind: str  # "graph" | "subgraph" | "function" | "training"
    depth: int = 0
    parent: Scope | None = None
    owner: Any = None  # the NodeProto whose attribute holds this subgraph
    attribute: str = ""

    @property
    def is_function(self) -> bool:
        return self.kind == "function"


def text(value: str | bytes) -> str:
    """A protobuf string field as text. Python protobuf returns ``bytes`` for proto2 string fields
    that are not valid UTF-8 (C++ loaders accept them as-is), so every name, domain and metadata
    value may be bytes; undecodable bytes become ``\\xNN`` escapes."""
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")


def node_label(node: Any, index: int) -> str:
    """A node's name, or ``OpType#index`` for unnamed nodes (exporters often leave names empty)."""
    return text(node.name) or f"{text(node.op_type) or '?'}#{index}"


def qualify(path: str, label: str) -> str:
    """``main:/encoder/Where`` - a node within a scope path (node names often start with '/')."""
    return f"{path}:{label}"


def subgraphs(node: Any) -> Iterator[tuple[str, Any]]:
    """(attribute name, GraphProto) for every subgraph attribute of ``node``.

    Decided by which fields are present, not by the declared attribute type: a graph stored
    under a mismatching type is still parsed by some loaders.
    """
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.name, attr.g
        for i, graph in enumerate(attr.graphs):
            yield f"{attr.name}[{i}]", graph


@dataclass
class ModelView:
    """All scopes of one model, built once and shared by every check."""

    model: Any
    max_depth: int
    max_nodes: int
    scopes: list[Scope] = field(default_factory=list)
    # Subgraphs not entered because they were nested deeper than ``max_depth``.
    too_deep: list[str] = field(default_factory=list)
    deepest: int = 0
    node_count: int = 0
    truncated: bool = False  # node limit hit: scopes after the limit were not listed

    def __post_init__(self) -> None:
        model = self.model
        roots: list[Scope] = [Scope("main", model.graph, "graph")]
        for i, info in enumerate(model.training_info):
            if info.HasField("initialization"):
                roots.append(Scope(f"training_info[{i}].initialization", info.initialization, "training"))
            if info.HasField("algorithm"):
                roots.append(Scope(f"training_info[{i}].algorithm", info.algorithm, "training"))
        for fn in model.functions:
            roots.append(Scope(f"function {text(fn.domain) or '<default>'}::{text(fn.name)}", fn, "function"))
        stack = list(reversed(roots))
        while stack:
            scope = stack.pop()
            self.node_count += len(scope.graph.node)
            if self.node_count > self.max_nodes:
                self.truncated = True
                break
            self.scopes.append(scope)
            self.deepest = max(self.deepest, scope.depth)
            children: list[Scope] = []
            for index, node in enumerate(scope.graph.node):
                for attr_name, graph in subgraphs(node):
                    path = f"{qualify(scope.path, node_label(node, index))}.{attr_name}"
                    if scope.depth + 1 > self.max_depth:
                        self.too_deep.append(path)
                        continue
                    children.append(Scope(path, graph, "subgraph", scope.depth + 1, scope, node, attr_name))
            stack.extend(reversed(children))

    def nodes(self) -> Iterator[tuple[Scope, int, Any]]:
        for scope in self.scopes:
            for index, node in enumerate(scope.graph.node):
                yield scope, index, node

    def tensors(self) -> Iterator[tuple[str, Any]]:
        """(where, TensorProto) for every tensor in the model, wherever it is stored."""
        for scope in self.scopes:
            graph = scope.graph
            if not scope.is_function:
                for tensor in graph.initializer:
                    yield f"{scope.path}: initializer '{text(tensor.name)}'", tensor
                for sparse in graph.sparse_initializer:
                    name = text(sparse.values.name or sparse.indices.name)
                    yield f"{scope.path}: sparse initializer '{name}' values", sparse.values
                    yield f"{scope.path}: sparse initializer '{name}' indices", sparse.indices
            for index, node in enumerate(graph.node):
                for attr in node.attribute:
                    where = f"{qualify(scope.path, node_label(node, index))}: attribute '{attr.name}'"
                    if attr.HasField("t"):
                        yield where, attr.t
                    for i, tensor in enumerate(attr.tensors):
                        yield f"{where}[{i}]", tensor
                    sparse_list = ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(
                        attr.sparse_tensors)
                    for i, sparse in enumerate(sparse_list):
                        yield f"{where} sparse[{i}] values", sparse.values
                        yield f"{where} sparse[{i}] indices", sparse.indices

    def local_functions(self) -> frozenset[tuple[str, str]]:
        """(domain, name) of model-local functions: calls to them are not custom operators."""
        from scanner.analyzers.onnx.knowledge import normalise_domain

        return frozenset((normalise_domain(f.domain), f.name) for f in self.model.functions)
