"""Value-flow facts for every tensor, through subgraphs and model-local functions.

Per tensor, in topological order, without evaluating anything:

* ``src``     graph inputs whose *values* reach it (``Shape``/``Size`` cut value flow);
* ``const``   derived from initializers/constants only;
* ``learned`` a weight-bearing op (Conv, MatMul, Gemm, embedding Gather ...) is on some path;
* ``raw``     there is a path from a data input with no learned op on it;
* ``nl``      such a raw path passes a comparison or step op (Equal, Greater, Relu ...);
* ``trigger`` raw, thresholded, not learned, and one value per sample (:mod:`shapes`), or a
  logic combination that keeps such a value a per-sample yes/no.

Graph inputs of rank 0 (or all dims 1) are control knobs (a sample rate, a flag), not data.
``If``/``Loop``/``Scan`` bodies see their enclosing scope; a call to a model-local function is
analyzed per call site with the caller's facts bound to its formal inputs. The select input of
``Where`` and the condition of ``If`` do not flow into their outputs: a mask chooses values, it
is not one. Gate candidates (a trigger feeding Where/If/Mul/Add ...) are collected for
:mod:`backdoor`.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.analyzers.onnx.consts import Const, constant_node_value, decode_tensor, fold
from scanner.analyzers.onnx.knowledge import BackdoorKnowledge, normalise_domain
from scanner.analyzers.onnx.shapes import Dim, Shape, infer, per_sample_scalar
from scanner.analyzers.onnx.walk import node_label, qualify, text

STANDARD = frozenset({"", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training", "com.microsoft"})
FOLDABLE = frozenset({"Constant", "Identity", "Cast", "Concat", "Squeeze", "Unsqueeze", "Flatten",
                      "Reshape", "Add", "Sub", "Mul", "Div"})


class BudgetExceeded(Exception):
    """More node visits than the ``onnx_nodes`` limit (function bodies count per call)."""


@dataclass(frozen=True)
class Fact:
    src: frozenset[str] = frozenset()
    const: bool = False
    learned: bool = False
    raw: bool = False
    nl: bool = False
    probe: bool = False  # raw, thresholded, not learned: a yes/no read off the input
    trigger: bool = False  # a probe with one value per sample
    shape: Shape = None

    @property
    def dataless(self) -> bool:
        """No graph input's value reaches it: a constant or shape-derived value."""
        return not self.src


@dataclass(frozen=True)
class Step:
    """How a raw/trigger property reached a tensor: the producing node and the input it came by."""

    label: str  # qualified with the scope path
    node: Any
    prev: str | None
    short: str = ""  # the node's own name


@dataclass
class Run:
    """One analyzed instance of a graph or function body."""

    path: str
    graph: Any
    parent: Run | None
    inherit: bool  # subgraphs see the enclosing scope; function bodies do not
    owner: int | None = None  # node index in ``parent``
    kind: str = "graph"  # graph | if | loop | scan | function
    facts: dict[str, Fact] = field(default_factory=dict)
    values: dict[str, Const] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    producer: dict[str, int] = field(default_factory=dict)
    free: set[str] = field(default_factory=set)
    bound: dict[str, str] = field(default_factory=dict)  # formal input -> caller tensor name
    outputs: list[str] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    children: dict[int, list[Run]] = field(default_factory=dict)

    def fact(self, name: str) -> Fact | None:
        found = self.facts.get(name)
        if found is None and self.inherit and self.parent is not None:
            found = self.parent.fact(name)
            if found is not None:
                self.free.add(name)
        return found

    def value(self, name: str) -> Const | None:
        found = self.values.get(name)
        if found is None and self.inherit and self.parent is not None and name not in self.facts:
            return self.parent.value(name)
        return found

    def label(self, index: int) -> str:
        return qualify(self.path, self.labels.get(index) or node_label(self.graph.node[index], index))


def _names(values: Any) -> list[Any]:
    """Input/output names of a GraphProto (ValueInfoProto) or FunctionProto (plain strings)."""
    return [v if isinstance(v, (str, bytes)) else v.name for v in values]


def _input_shape(value_info: Any) -> Shape:
    if isinstance(value_info, str) or not value_info.type.HasField("tensor_type"):
        return None
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def merge(facts: list[Fact]) -> Fact:
    if not facts:
        return Fact()
    shapes = {f.shape for f in facts}
    return Fact(
        src=frozenset().union(*(f.src for f in facts)),
        const=all(f.const for f in facts),
        learned=any(f.learned for f in facts),
        raw=any(f.raw for f in facts),
        nl=any(f.nl for f in facts),
        probe=all(f.probe for f in facts),
        trigger=all(f.trigger for f in facts),
        shape=shapes.pop() if len(shapes) == 1 else None,
    )


@dataclass(frozen=True)
class GateCandidate:
    run: Run
    index: int
    trigger_input: str
    kind: str  # "where" | "if" | "arith"


class Dataflow:
    def __init__(self, model: Any, kb: BackdoorKnowledge, max_visits: int, max_depth: int) -> None:
        self.model = model
        self.kb = kb
        self.max_visits = max_visits
        self.max_depth = max_depth
        self.visits = 0
        self.functions = {(normalise_domain(f.domain), f.name): f for f in model.functions}
        self.runs: list[Run] = []
        self.gates: list[GateCandidate] = []
        self.batch_dims: set[Dim] = set()
        self.data_inputs: dict[str, Shape] = {}
        self.recursion: list[str] = []
        self.main: Run | None = None
        # Data inputs whose values reach a learned op: the network's own inputs. A trigger must
        # read one of them (a labels input that only feeds a loss is not a backdoor probe).
        self.network_inputs: set[str] = set()
        self.any_learned = False

    # -- scopes -------------------------------------------------------------------------
    def analyze(self) -> Run:
        graph = self.model.graph
        run = Run("main", graph, None, inherit=False)
        initializers = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
        bindings: dict[str, Fact] = {}
        for value_info in graph.input:
            if value_info.name in initializers:
                continue
            shape = _input_shape(value_info)
            control = shape is not None and all(d == 1 for d in shape)
            if control:
                bindings[value_info.name] = Fact(shape=shape)
            else:
                bindings[value_info.name] = Fact(src=frozenset({value_info.name}), raw=True, shape=shape)
                self.data_inputs[value_info.name] = shape
                if shape is not None and len(shape) >= 2:
                    self.batch_dims.add(shape[0])
        self.main = run
        self.run_graph(run, bindings, depth=0)
        return run

    def run_graph(self, run: Run, bindings: dict[str, Fact], depth: int) -> None:
        self.runs.append(run)
        graph = run.graph
        run.facts.update(bindings)
        run.outputs = _names(graph.output)
        if hasattr(graph, "initializer"):
            for tensor in graph.initializer:
                run.facts[tensor.name] = Fact(const=True, shape=tuple(int(d) for d in tensor.dims))
                value = decode_tensor(tensor)
                if value is not None:
                    run.values[tensor.name] = value
            for sparse in graph.sparse_initializer:
                run.facts[sparse.values.name] = Fact(const=True, shape=tuple(int(d) for d in sparse.dims))
        nodes = list(graph.node)
        for index, node in enumerate(nodes):
            for out in node.output:
                if out:
                    run.producer.setdefault(out, index)
            for name in node.input:
                if name:
                    run.consumers[name].append(index)
        run.order = self.topological(run, nodes)
        for index in run.order:
            self.visits += 1
            if self.visits > self.max_visits:
                raise BudgetExceeded
            self.process(run, index, nodes[index], depth)

    @staticmethod
    def topological(run: Run, nodes: list[Any]) -> list[int]:
        """Kahn's order, stable by position; nodes on a cycle are appended in file order."""
        waiting = [0] * len(nodes)
        users: dict[int, list[int]] = defaultdict(list)
        for index, node in enumerate(nodes):
            deps = {run.producer[n] for n in node.input if n in run.producer and run.producer[n] != index}
            waiting[index] = len(deps)
            for dep in deps:
                users[dep].append(index)
        ready = [i for i, w in enumerate(waiting) if w == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            index = heapq.heappop(ready)
            order.append(index)
            for user in users[index]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, user)
        if len(order) < len(nodes):
            seen = set(order)
            order.extend(i for i in range(len(nodes)) if i not in seen)
        return order

    # -- nodes --------------------------------------------------------------------------
    def process(self, run: Run, index: int, node: Any, depth: int) -> None:
        domain = normalise_domain(node.domain)
        ins = [run.fact(name) if name else None for name in node.input]
        key = (domain, node.op_type)
        if key in self.functions:
            outs = self.call(run, index, node, ins, depth)
        elif domain == "" and node.op_type == "If":
            outs = self.run_if(run, index, node, ins, depth)
        elif domain == "" and node.op_type in ("Loop", "Scan"):
            outs = self.run_loop(run, index, node, ins, depth)
        else:
            outs = self.generic(run, node, ins, domain in STANDARD)
        if domain == "" and node.op_type in FOLDABLE and len(node.output) == 1:
            value = fold(node, [run.value(n) for n in node.input])
            if value is not None:
                run.values[node.output[0]] = value
        for name, fact in zip(node.output, outs, strict=False):
            if not name:
                continue
            run.facts[name] = fact
            if fact.raw or fact.probe:
                run.steps[name] = Step(run.label(index), node, self.carrier(node, ins), node_label(node, index))
        self.gate_candidate(run, index, node, domain, ins, outs)

    @staticmethod
    def carrier(node: Any, ins: list[Fact | None]) -> str | None:
        """The input a raw/trigger property came through (for the evidence path)."""
        for test in (lambda f: f.trigger, lambda f: f.probe, lambda f: f.raw and f.nl, lambda f: f.raw):
            for name, fact in zip(node.input, ins, strict=False):
                if fact is not None and test(fact):
                    return str(name)
        return None

    def is_learned(self, node: Any, ins: list[Fact | None]) -> bool:
        op = node.op_type
        if op in self.kb.learned_ops:
            return True
        if op in self.kb.table_ops and ins and ins[0] is not None:
            table = ins[0]
            return table.const and table.shape is not None and len(table.shape) >= 2
        return False

    def is_threshold(self, node: Any) -> bool:
        """A comparison or step. ``Clip`` with only a lower bound is a numeric floor
        (``clamp(count, min=1e-9)`` in mean pooling), not a step: both bounds are required."""
        if node.op_type not in self.kb.threshold_ops:
            return False
        if node.op_type == "Clip":
            has_max = (len(node.input) > 2 and bool(node.input[2])) or any(
                a.name == "max" for a in node.attribute)
            return has_max
        return True

    def generic(self, run: Run, node: Any, ins: list[Fact | None], standard: bool) -> list[Fact]:
        kb = self.kb
        op = node.op_type
        present = [f for f in ins if f is not None]
        if standard:
            def const_at(i: int) -> Const | None:
                return run.value(node.input[i]) if i < len(node.input) and node.input[i] else None
            if op == "Constant":
                value = constant_node_value(node)
                shape: Shape = value.dims if value is not None else _constant_dims(node)
                return [Fact(const=True, shape=shape)]
            shapes = infer(node, [f.shape if f is not None else None for f in ins], const_at)
        else:
            shapes = [None] * len(node.output)
        src = frozenset().union(*(f.src for f in present)) if present else frozenset()
        const = all(f.const for f in present)
        learned = any(f.learned for f in present)
        if op in kb.shape_ops:
            is_const = op == "ConstantOfShape" and bool(present) and present[0].const
            return [Fact(const=is_const or not present, shape=s) for s in shapes]
        if op in kb.guard_ops:
            return [Fact(src=src, const=const, learned=learned, shape=s) for s in shapes]
        if self.is_learned(node, ins):
            self.any_learned = True
            self.network_inputs.update(src)
            return [Fact(src=src, const=const, learned=True, shape=s) for s in shapes]
        if op == "Where" and standard and len(ins) == 3 and all(f is not None for f in ins):
            arms = [f for f in ins[1:] if f is not None]
            src = frozenset().union(*(f.src for f in arms))
            raw = any(f.raw for f in arms)
            nl = any(f.nl for f in arms)
            learned = any(f.learned for f in arms)
        else:
            raw = any(f.raw for f in present)
            nl = any(f.nl for f in present) or (raw and self.is_threshold(node))
        outs: list[Fact] = []
        probe = (raw and nl and not learned) or (op in kb.logic_combine_ops and any(f.probe for f in present))
        carried = op in kb.trigger_carry_ops and any(f.trigger for f in present)
        for shape in shapes:
            trigger = probe and (carried or per_sample_scalar(shape, frozenset(self.batch_dims)))
            outs.append(Fact(src, const, learned, raw, nl, probe, trigger, shape))
        return outs

    def gate_candidate(self, run: Run, index: int, node: Any, domain: str, ins: list[Fact | None],
                       outs: list[Fact]) -> None:
        if domain != "":
            return
        op = node.op_type
        # An If condition is one value by definition: a probe is enough, whatever its inferred shape.
        if op == "If" and ins and ins[0] is not None and ins[0].probe:
            self.gates.append(GateCandidate(run, index, node.input[0], "if"))
        elif op == "Where" and ins and ins[0] is not None and ins[0].trigger:
            if not (outs and outs[0].trigger):
                self.gates.append(GateCandidate(run, index, node.input[0], "where"))
        elif op in self.kb.arith_gates and not (outs and outs[0].trigger):
            for name, fact in zip(node.input, ins, strict=False):
                if fact is not None and fact.trigger:
                    self.gates.append(GateCandidate(run, index, name, "arith"))
                    break

    # -- control flow and functions -----------------------------------------------------
    def child(self, run: Run, index: int, path: str, graph: Any, inherit: bool, kind: str) -> Run:
        child = Run(path, graph, run, inherit, owner=index, kind=kind)
        run.children.setdefault(index, []).append(child)
        return child

    def subgraph_runs(self, run: Run, index: int, node: Any, depth: int) -> list[Run]:
        children: list[Run] = []
        if depth + 1 > self.max_depth:
            return children
        for attr in node.attribute:
            graphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for i, graph in enumerate(graphs):
                suffix = attr.name if len(graphs) == 1 else f"{attr.name}[{i}]"
                kind = "if" if node.op_type == "If" else node.op_type.lower()
                children.append(self.child(run, index, f"{run.label(index)}.{suffix}", graph, True, kind))
        return children

    def finish_child(self, run: Run, index: int, child: Run) -> None:
        for name in child.free:
            if index not in run.consumers[name]:
                run.consumers[name].append(index)

    def run_if(self, run: Run, index: int, node: Any, ins: list[Fact | None], depth: int) -> list[Fact]:
        branch_outs: list[list[Fact]] = []
        for child in self.subgraph_runs(run, index, node, depth):
            self.run_graph(child, {}, depth + 1)
            self.finish_child(run, index, child)
            branch_outs.append([child.fact(o) or Fact() for o in child.outputs])
        outs = []
        for i in range(len(node.output)):
            outs.append(merge([b[i] for b in branch_outs if i < len(b)]))
        return outs

    def run_loop(self, run: Run, index: int, node: Any, ins: list[Fact | None], depth: int) -> list[Fact]:
        """Loop: (M, cond, carried...) -> body (iter, cond, carried...) -> (cond, carried..., scans...).
        Scan: (states..., scan inputs...) -> body (same) -> (states..., scan outputs...)."""
        children = self.subgraph_runs(run, index, node, depth)
        if not children:
            return [merge([f for f in ins if f is not None]) for _ in node.output]
        child = children[0]
        if node.op_type == "Loop":
            actual: list[Fact | None] = [Fact(shape=()), (ins[1] if len(ins) > 1 else None) or Fact(shape=()),
                                         *ins[2:]]
            sources = ["", node.input[1] if len(node.input) > 1 else "", *node.input[2:]]
            initial = list(ins[2:])
            first_out = 1  # body output 0 is the loop condition
            sliced_from = len(actual)  # Loop body inputs are never sliced
        else:
            actual = list(ins)
            sources = list(node.input)
            sliced_from = len(ins) - _int_attr(node, "num_scan_inputs", 0)
            initial = list(ins[:sliced_from])
            first_out = 0
        bindings: dict[str, Fact] = {}
        for i, formal in enumerate(_names(child.graph.input)):
            fact = actual[i] if i < len(actual) and actual[i] is not None else Fact()
            assert fact is not None
            bindings[formal] = replace(fact, shape=None, trigger=False) if i >= sliced_from else fact
            if i < len(sources) and sources[i]:
                child.bound[formal] = sources[i]
        self.run_graph(child, bindings, depth + 1)
        self.finish_child(run, index, child)
        body_outs = [child.fact(o) or Fact() for o in child.outputs]
        outs: list[Fact] = []
        for j in range(len(node.output)):
            produced = body_outs[j + first_out] if j + first_out < len(body_outs) else Fact()
            if j < len(initial):
                start = initial[j]
                outs.append(merge([produced] + ([start] if start is not None else [])))
            else:
                outs.append(replace(produced, shape=None, trigger=False))
        return outs

    def call(self, run: Run, index: int, node: Any, ins: list[Fact | None], depth: int) -> list[Fact]:
        function = self.functions[(normalise_domain(node.domain), node.op_type)]
        name = f"{text(function.domain)}::{text(function.name)}"
        if name in self.recursion or len(self.recursion) >= self.max_depth:
            return self.generic(run, node, ins, standard=False)
        child = self.child(run, index, f"{run.label(index)}->{name}", function, False, "function")
        bindings: dict[str, Fact] = {}
        for i, formal in enumerate(function.input):
            given = ins[i] if i < len(ins) else None
            bindings[formal] = given if given is not None else Fact()
            if i < len(node.input) and node.input[i]:
                child.bound[formal] = node.input[i]
            if i < len(node.input) and node.input[i]:
                value = run.value(node.input[i])
                if value is not None:
                    child.values[formal] = value
        self.recursion.append(name)
        try:
            self.run_graph(child, bindings, depth)
        finally:
            self.recursion.pop()
        return [child.fact(o) or Fact() for o in child.outputs]


def _int_attr(node: Any, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _constant_dims(node: Any) -> Shape:
    for attr in node.attribute:
        if attr.HasField("t"):
            return tuple(int(d) for d in attr.t.dims)
        if attr.name in ("value_int", "value_float", "value_string"):
            return ()
        if attr.name in ("value_ints", "value_floats", "value_strings"):
            return (len(attr.ints) or len(attr.floats) or len(attr.strings),)
    return None
