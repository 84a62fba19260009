"""Graph backdoors: input triggers that override the network (ShadowLogic, architectural
backdoors, TrojanNet), found from value-flow facts (:mod:`dataflow`) without running anything.

A report needs the whole chain, which is what ordinary models never have:

1. a **trigger**: raw input values (no learned layer in between) thresholded and reduced to one
   yes/no per sample;
2. a **gate** it drives: ``Where``/``If`` select, or ``Mul``/``Add``/``Sub``/``Div``/``Max``/``Min``
   arithmetic;
3. a **payload**: the gate selects or modulates a learned tensor, or injects a constant that then
   **merges** into a learned tensor within a few non-learned ops;
4. **critical** when the merge reaches a graph output within a few non-learned ops (output
   override); **high** when it lands in a hidden state (steering).

Attention masks fail 1 (per-element, never reduced), shape-driven ``If`` fails 1 (``Shape`` cuts
value flow), sample-rate switches fail 1 (rank-0 control inputs are not data), NaN guards fail 1
(IsNaN/IsInf do not count), input auto-scaling fails 3 (the payload is the raw input, consumed by
the network rather than overriding it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from scanner.analyzers.onnx.context import OnnxScan, shorten
from scanner.analyzers.onnx.dataflow import BudgetExceeded, Dataflow, Fact, GateCandidate, Run, Step
from scanner.analyzers.onnx.walk import text
from scanner.core.finding import Finding, Severity

_TRACE_LIMIT = 64


@dataclass(frozen=True)
class Detection:
    rule: str
    severity: Severity | None
    node: str
    evidence: str
    key: str  # dedupe: one report per merge point


def _rank(det: Detection) -> tuple[bool, bool]:
    """Lower is more serious: output override before steering, rule severity before overrides."""
    return det.rule != "MLS-ONX-101", det.severity is not None


def _fmt_shape(fact: Fact | None) -> str:
    if fact is None or fact.shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in fact.shape) + "]"


class BackdoorCheck:
    def __init__(self, scan: OnnxScan) -> None:
        self.scan = scan
        self.kb = scan.kb.backdoor
        limits = scan.ctx.limits
        self.flow = Dataflow(scan.model, self.kb, limits.onnx_nodes, limits.nesting_depth)

    def run(self) -> Iterator[Finding]:
        try:
            self.flow.analyze()
        except BudgetExceeded:
            yield self.scan.finding("MLS-GEN-012", f"backdoor analysis stopped after "
                                    f"{self.flow.max_visits:,} node visits (function bodies count per "
                                    "call); the graph was not fully checked for input triggers")
            return
        detections: dict[str, Detection] = {}
        for gate in self.flow.gates:
            found = self.judge(gate)
            if found is None:
                continue
            old = detections.get(found.key)
            if old is None or _rank(found) < _rank(old):
                detections[found.key] = found
        for det in self.trojannet():
            detections.setdefault(det.key, det)
        for det in sorted(detections.values(), key=lambda d: (d.rule, d.node)):
            yield self.scan.finding(det.rule, det.evidence, det.node, det.severity)

    # -- trigger gates --------------------------------------------------------------------
    def arms(self, gate: GateCandidate) -> list[tuple[str, Fact]]:
        run, node = gate.run, gate.run.graph.node[gate.index]
        if gate.kind == "if":
            arms: list[tuple[str, Fact]] = []
            for child in run.children.get(gate.index, []):
                facts = [child.fact(o) or Fact() for o in child.outputs]
                branch = child.path.rsplit(".", 1)[-1]
                if facts and all(f.dataless and not f.trigger for f in facts):
                    arms.append((f"{branch} (returns constants only)", Fact(const=True)))
                elif any(f.learned for f in facts):
                    arms.append((f"{branch} (returns learned values)", Fact(learned=True, src=frozenset({"?"}))))
                else:
                    arms.append((branch, Fact(src=frozenset({"?"}))))
            return arms
        names = list(node.input[1:3]) if gate.kind == "where" else [
            n for n in node.input if n and n != gate.trigger_input]
        return [(n, run.fact(n) or Fact()) for n in names if n]

    def judge(self, gate: GateCandidate) -> Detection | None:
        run = gate.run
        trigger = run.fact(gate.trigger_input)
        if trigger is None or not trigger.src & self.flow.network_inputs:
            return None  # the probed input never reaches the network (labels, loss masks)
        arms = self.arms(gate)
        learned = [name for name, f in arms if f.learned]
        constants = [name for name, f in arms if f.dataless and not f.trigger]
        if learned:
            merge: tuple[Run, int] | None = (run, gate.index)
            exposed = False
        elif constants:
            merge, exposed = self.find_merge(run, list(run.graph.node[gate.index].output))
        else:
            return None  # the gate only rescales raw input that the network then consumes
        trigger_text = self.describe_trigger(run, gate.trigger_input)
        gate_label = run.label(gate.index)
        gate_op = text(run.graph.node[gate.index].op_type)
        payload = []
        for name, fact in arms:
            kind = "learned" if fact.learned else "constant" if fact.dataless else "input-derived"
            payload.append(name if gate.kind == "if" else f"{name} ({kind}, shape {_fmt_shape(fact)})")
        if merge is None:
            if not exposed or not self.flow.any_learned:
                return None
            evidence = (f"{trigger_text}; gate {gate_op} '{gate_label}' selects {shorten(payload, 3)} and the "
                        "trigger-controlled constant is a graph output")
            return Detection("MLS-ONX-102", Severity.MEDIUM, gate_label, evidence, f"exposed:{gate_label}")
        merge_run, merge_index = merge
        merge_label = merge_run.label(merge_index)
        reach = self.reach_output(merge_run, list(merge_run.graph.node[merge_index].output),
                                  self.kb.merge_to_output_hops)
        where = (f"merges into the learned path at {text(merge_run.graph.node[merge_index].op_type)} "
                 f"'{merge_label}'" if merge_label != gate_label else "acts on the learned path directly")
        evidence = f"{trigger_text}; gate {gate_op} '{gate_label}' on {shorten(payload, 3)} {where}"
        if reach is not None:
            evidence += f", reaching graph output '{reach[0]}' after {reach[1]} non-learned op(s)"
            return Detection("MLS-ONX-101", None, gate_label, evidence, f"merge:{merge_label}")
        evidence += ", inside the network (hidden-state steering)"
        return Detection("MLS-ONX-102", None, gate_label, evidence, f"merge:{merge_label}")

    def describe_trigger(self, run: Run, name: str) -> str:
        steps, origin = self.trace(run, name)
        parts = [f"input '{text(origin)}'"] + [f"{text(s.node.op_type)}('{s.short}')" for _, s in steps]
        thresholds: list[str] = []
        for step_run, step in steps:
            op = text(step.node.op_type)
            if op in self.kb.threshold_ops or op.startswith("Reduce"):
                for inp in step.node.input:
                    value = step_run.value(inp) if inp and inp != step.prev else None
                    if value is not None and value.numel <= 8:
                        shown = [round(v, 6) if isinstance(v, float) else v for v in value.values]
                        thresholds.append(f"{op} {shown}")
        fact = run.fact(name)
        summary = f"trigger {' -> '.join(parts)} (one value per sample, shape {_fmt_shape(fact)})"
        if thresholds:
            summary += f", constants {shorten(thresholds, 4)}"
        return summary

    def trace(self, run: Run, name: str) -> tuple[list[tuple[Run, Step]], str]:
        chain: list[tuple[Run, Step]] = []
        current: Run | None = run
        while current is not None and len(chain) < _TRACE_LIMIT:
            step = current.steps.get(name)
            if step is None:
                if name in current.bound and current.parent is not None:
                    name, current = current.bound[name], current.parent
                    continue
                if name not in current.facts and current.inherit and current.parent is not None:
                    current = current.parent
                    continue
                break
            chain.append((current, step))
            if step.prev is None:
                break
            name = step.prev
        chain.reverse()
        return chain, name

    # -- forward search -------------------------------------------------------------------
    def introduces_learned(self, run: Run, index: int) -> bool:
        node = run.graph.node[index]
        ins = [run.fact(n) for n in node.input if n]
        outs = [run.facts.get(n) for n in node.output if n]
        return any(f is not None and f.learned for f in outs) and not any(f is not None and f.learned for f in ins)

    def successors(self, run: Run, name: str) -> Iterator[tuple[Run, str, int | None]]:
        """(run, tensor, consumer index) one step downstream of ``name``; None = scope output."""
        for index in run.consumers.get(name, []):
            yield run, name, index
        if name in run.outputs and run.parent is not None and run.owner is not None:
            owner = run.parent.graph.node[run.owner]
            position = run.outputs.index(name)
            if run.kind in ("if", "function"):
                mapped = [owner.output[position]] if position < len(owner.output) else []
            else:
                mapped = list(owner.output)
            for out in mapped:
                if out:
                    yield run.parent, out, None

    def find_merge(self, run: Run, names: list[str]) -> tuple[tuple[Run, int] | None, bool]:
        """First node within reach where the gated value meets a learned tensor; and whether the
        gated value reaches a graph output on the way."""
        exposed = False
        queue = deque((run, n, 0) for n in names if n)
        seen: set[tuple[int, str]] = set()
        while queue:
            current, name, hops = queue.popleft()
            if (id(current), name) in seen:
                continue
            seen.add((id(current), name))
            if current.parent is None and name in current.outputs:
                exposed = True
            for nxt_run, tensor, index in self.successors(current, name):
                if index is None:
                    queue.append((nxt_run, tensor, hops))
                    continue
                node = nxt_run.graph.node[index]
                if node.op_type in self.kb.merge_ops:
                    others = [nxt_run.fact(n) for n in node.input if n and n != tensor]
                    if any(f is not None and f.learned for f in others):
                        return (nxt_run, index), exposed
                if self.introduces_learned(nxt_run, index) or hops + 1 > self.kb.gate_to_merge_hops:
                    continue
                queue.extend((nxt_run, out, hops + 1) for out in node.output if out)
        return None, exposed

    def reach_output(self, run: Run, names: list[str], limit: int) -> tuple[str, int] | None:
        queue = deque((run, n, 0) for n in names if n)
        seen: set[tuple[int, str]] = set()
        while queue:
            current, name, hops = queue.popleft()
            if (id(current), name) in seen:
                continue
            seen.add((id(current), name))
            if current.parent is None and name in current.outputs:
                return name, hops
            for nxt_run, tensor, index in self.successors(current, name):
                if index is None:
                    queue.append((nxt_run, tensor, hops))
                    continue
                node = nxt_run.graph.node[index]
                if self.flow.is_learned(node, [nxt_run.fact(n) if n else None for n in node.input]):
                    continue
                if self.introduces_learned(nxt_run, index) or hops + 1 > limit:
                    continue
                queue.extend((nxt_run, out, hops + 1) for out in node.output if out)
        return None

    # -- TrojanNet --------------------------------------------------------------------------
    def trojannet(self) -> Iterator[Detection]:
        kb, flow = self.kb, self.flow
        main = flow.main
        if main is None:
            return
        sizes: dict[str, int] = {}
        for name, shape in flow.data_inputs.items():
            if shape is not None and len(shape) >= 2 and all(isinstance(d, int) for d in shape[1:]):
                count = 1
                for d in shape[1:]:
                    count *= int(d)  # type: ignore[arg-type]
                if count >= kb.window_min_input_elements:
                    sizes[name] = count
        if not sizes:
            return
        nodes = main.graph.node
        origin: dict[str, str] = {name: name for name in sizes}
        windows: dict[str, tuple[str, str, int]] = {}  # tensor -> (window node, input, elements)
        for index in main.order:
            node = nodes[index]
            data = [n for n in node.input if n]
            if not data or data[0] not in origin:
                continue
            rest = [main.fact(n) for n in data[1:]]
            if node.op_type in kb.window_passthrough_ops and all(f is not None and f.dataless for f in rest):
                for out in node.output:
                    origin[out] = origin[data[0]]
            elif node.op_type in kb.window_ops and node.output \
                    and all(main.value(n) is not None for n in data[1:]) and rest:
                elements = self.non_batch_elements(main.fact(node.output[0]))
                whole = sizes[origin[data[0]]]
                if elements is not None and elements <= max(kb.window_max_elements,
                                                             kb.window_max_fraction * whole):
                    windows[node.output[0]] = (main.label(index), origin[data[0]], elements)
        if not windows:
            return
        win: set[str] = set(windows)
        win_learned: set[str] = set()
        for index in main.order:
            node = nodes[index]
            ins = [n for n in node.input if n]
            if not any(n in win for n in ins):
                continue
            learned_here = self.flow.is_learned(node, [main.fact(n) for n in node.input]) or any(
                n in win_learned for n in ins)
            win.update(o for o in node.output if o)
            if learned_here:
                win_learned.update(o for o in node.output if o)
            if node.op_type in kb.merge_ops and any(n in win_learned for n in ins):
                others = [n for n in ins if n not in win and (f := main.fact(n)) is not None and f.learned]
                if not others:
                    continue
                reach = self.reach_output(main, [o for o in node.output if o], kb.window_merge_to_output_hops)
                if reach is None:
                    continue
                source = next(windows[w] for w in windows)
                label = main.label(index)
                evidence = (f"window {source[0]} takes {source[2]} element(s) of input '{source[1]}' "
                            f"({sizes[source[1]]} per sample), feeds its own learned layers and merges "
                            f"with the main network ({shorten(others, 2)}) at {text(node.op_type)} '{label}', "
                            f"{reach[1]} op(s) before graph output '{reach[0]}'")
                yield Detection("MLS-ONX-103", None, label, evidence, f"trojan:{label}")
                return

    @staticmethod
    def non_batch_elements(fact: Fact | None) -> int | None:
        if fact is None or fact.shape is None or not fact.shape:
            return None
        count = 1
        for d in fact.shape[1:]:
            if not isinstance(d, int):
                return None
            count *= d
        return count


def check(scan: OnnxScan) -> Iterator[Finding]:
    yield from BackdoorCheck(scan).run()
