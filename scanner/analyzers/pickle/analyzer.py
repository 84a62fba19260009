"""The pickle analyzer: every pickle in a stream, judged import by import, never unpickled.

Covers plain pickles (protocols 0-5), stacked pickles, the legacy PyTorch stream (five pickles,
then raw storages torch never unpickles), joblib's inline NumPy arrays (raw bytes, or a nested
pickle for object arrays, between opcodes), nested ``pickle.loads`` payloads and FRAME
tricks. Malformed streams are analyzed up to the break, and the break is a finding of its own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.analyzers.pickle.evidence import decompile, opcode_view, relevant_lines
from scanner.analyzers.pickle.opcodes import Op, PickleSyntaxError, read_ops
from scanner.analyzers.pickle.policy import Verdict, load_policy
from scanner.analyzers.pickle.vm import (
    JOBLIB_WRAPPER,
    Call,
    Const,
    Event,
    LimitHit,
    Machine,
    Seq,
    joblib_array_layout,
)
from scanner.core.blob import BytesBlob
from scanner.core.finding import Finding
from scanner.formats.interface import Format, Sniffed

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5          # magic, protocol, sys_info, object, storage keys
RESYNC_WINDOW = 4096              # bytes of a frame-straddling argument re-parsed as opcodes
LOADS_CALLS = frozenset({"pickle.loads", "_pickle.loads", "cPickle.loads", "dill.loads",
                         "pickle._loads", "cloudpickle.loads"})
MAX_NESTED_BYTES = 64 << 20


@dataclass
class _Seen:
    """What one dangerous or unreviewed global did in one pickle."""

    verdict: Verdict
    import_offset: int
    opcode: str
    calls: list[tuple[int, str, str]] = field(default_factory=list)   # (offset, opcode, args)


def _render_args(args: object, limit: int = 160) -> str:
    def one(value: object) -> str:
        if isinstance(value, Const):
            text = repr(value.value)
            if value.length is not None and value.length > len(value.value):  # type: ignore[arg-type]
                text += f"...<{value.length} bytes>"
            return text
        if isinstance(value, Seq):
            inner = ", ".join(one(v) for v in value.items[:6])
            if value.kind == "tuple" and len(value.items) == 1:
                inner += ","
            return {"tuple": f"({inner})", "list": f"[{inner}]"}.get(value.kind, f"{value.kind}({inner})")
        if isinstance(value, Call):
            return f"<result of {one(value.func)}(...)>"
        dotted = getattr(value, "dotted", None)
        return dotted or f"<{type(value).__name__.lower()}>"
    return one(args)[:limit]


class PickleAnalyzer(Analyzer):
    name = "pickle"
    formats = frozenset({Format.PICKLE})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        yield from _StreamScan(artifact, ctx).run()


class _StreamScan:
    def __init__(self, artifact: Artifact, ctx: ScanContext) -> None:
        self.artifact = artifact
        self.ctx = ctx
        self.policy = load_policy()
        self.blob = artifact.blob
        self.findings = 0

    def finding(self, rule_id: str, offset: int | None, evidence: str, **kw: object) -> Finding:
        self.findings += 1
        return self.ctx.finding(rule_id, self.artifact.location.at(offset=offset), evidence, **kw)  # type: ignore[arg-type]

    def run(self) -> Iterator[Finding | Artifact]:
        stream = self.blob.open()
        index = 0
        legacy = False
        while stream.tell() < self.blob.size:
            start = stream.tell()
            if index > 0 and not legacy:
                # Bytes after a complete pickle: another pickle (stacked), or trailing data.
                head = self.blob.read_at(start, 1)
                if not _could_start_pickle(self.blob, start):
                    yield self.finding(
                        "MLS-PKL-009", start,
                        f"{self.blob.size - start} byte(s) follow the last complete pickle and do "
                        f"not parse as another one (first byte 0x{head[0]:02x}). pickle.load ignores "
                        "them, but code that reads several pickles from the stream would not.")
                    return
            machine = yield from self.one_pickle(stream, start)
            if machine is None:
                return
            index += 1
            if index == 1 and isinstance(machine.result, Const) and machine.result.value == TORCH_LEGACY_MAGIC:
                legacy = True
            if legacy and index == TORCH_LEGACY_PICKLES:
                return  # the rest is raw storage data; torch never unpickles it
            if self.findings >= self.ctx.limits.pickle_max_findings:
                return

    def one_pickle(self, stream: BinaryIO, start: int):  # type: ignore[no-untyped-def]
        """Analyze one pickle from ``start``; returns its Machine, or None when the stream
        broke (reported) and scanning must stop."""
        limits = self.ctx.limits
        machine = Machine(limits.pickle_memo_entries, limits.pickle_stack_depth)
        seen: dict[str, _Seen] = {}
        handled = 0
        broken: tuple[str, int] | None = None
        try:
            for op in read_ops(stream):
                if op.name == "PROTO" and not 0 <= int(op.arg) <= 5:  # type: ignore[call-overload]
                    raise PickleSyntaxError(f"unsupported pickle protocol {op.arg}", op.offset)
                if machine.frame_end is not None and op.name != "FRAME":
                    if op.offset < machine.frame_end < op.end:
                        yield from self.frame_straddle(op, machine.frame_end)
                        machine.frame_end = None
                    elif op.offset >= machine.frame_end:
                        machine.frame_end = None
                machine.step(op)
                while handled < len(machine.events):
                    event = machine.events[handled]
                    handled += 1
                    yield from self.handle(event, op, seen, stream)
        except PickleSyntaxError as exc:
            broken = (str(exc), exc.offset)
        except LimitHit as exc:
            yield from self.report(seen, start, stream.tell())
            yield self.finding("MLS-GEN-012", exc.offset,
                               f"pickle {exc}: analysis stopped here. Everything before this point "
                               "was analyzed; the rest was not, so the file is treated as unsafe.")
            return None
        except RecursionError:
            broken = ("structure nested too deeply", stream.tell())
        yield from self.report(seen, start, stream.tell())
        if broken is not None:
            message, offset = broken
            had_payload = any(s.verdict.kind != "allowed" for s in seen.values())
            yield self.finding(
                "MLS-PKL-006", offset,
                f"malformed pickle: {message}. A loader executes every opcode before this point "
                f"and then fails{' — after the imports reported above' if had_payload else ''}. "
                "Legitimate serializers never write broken pickles (nullifAI hid its payload "
                "before a deliberate break).")
            return None
        return machine

    def handle(self, event: Event, op: Op, seen: dict[str, _Seen], stream: BinaryIO):  # type: ignore[no-untyped-def]
        kind = event.kind
        if kind == "import" and event.target is not None:
            verdict = self.policy.judge(event.target.module, event.target.name)
            if verdict.kind != "allowed" and verdict.path not in seen:
                seen[verdict.path] = _Seen(verdict, event.offset, event.detail)
        elif kind == "call" and event.target is not None:
            verdict = self.policy.judge(event.target.module, event.target.name)
            if verdict.path in seen:
                seen[verdict.path].calls.append((event.offset, event.detail, _render_args(event.args)))
            if verdict.path in LOADS_CALLS:
                yield from self.nested_pickle(event)
        elif kind == "dynamic-import":
            yield self.finding("MLS-PKL-003", event.offset,
                               f"{event.detail}: the module or name is computed while loading, so "
                               "what gets imported cannot be known statically.")
        elif kind == "ext":
            yield self.finding("MLS-PKL-004", event.offset,
                               f"{event.detail}. The callable comes from the process's copyreg "
                               "extension registry, with no import visible in the file.")
        elif kind == "build-on-callable":
            yield self.finding("MLS-PKL-005", event.offset,
                               f"{event.detail}: an imported function or class is given new "
                               "attributes, a known way to smuggle builtins (eval) into a callable "
                               "that looks harmless (modelscan #330).")
        elif kind == "memo-miss":
            yield self.finding("MLS-PKL-008", event.offset,
                               f"{event.detail}. A loader fails here, after running everything "
                               "before; scanners that stop at this point miss earlier payloads.")
        elif kind == "build" and event.target is not None and \
                self.policy.judge(event.target.module, event.target.name).path == JOBLIB_WRAPPER:
            yield from self.joblib_inline(event, stream)

    def report(self, seen: dict[str, _Seen], start: int, end: int) -> Iterator[Finding]:
        if not seen:
            return
        data = self.blob.read_at(start, min(end - start, 2 << 20))
        source = decompile(data) if any(s.verdict.kind in ("dangerous", "dunder") for s in seen.values()) else None
        for path, item in seen.items():
            verdict = item.verdict
            lines = [f"{path} imported by {item.opcode} at byte {item.import_offset}"]
            lines += [f"called by {opcode} at byte {offset} with {args}" for offset, opcode, args in item.calls[:3]]
            if verdict.why:
                lines.append(f"why: {verdict.why}" + (f" (matches '{verdict.matched}')" if verdict.matched else ""))
            if verdict.kind in ("dangerous", "dunder"):
                snippet = relevant_lines(source, path.rsplit(".", 1)[-1]) if source else ""
                if snippet:
                    lines.append("would run (decompiled with fickling):\n" + snippet)
                else:
                    lines.append("opcodes:\n" + opcode_view(data, item.import_offset, base=start))
                yield self.finding("MLS-PKL-001", item.import_offset, "\n".join(lines),
                                   severity=verdict.severity)
            else:
                yield self.finding("MLS-PKL-002", item.import_offset, "\n".join(lines))

    def nested_pickle(self, event: Event) -> Iterator[Artifact]:
        args = event.args
        payload = args.items[0] if isinstance(args, Seq) and args.items else None
        if isinstance(payload, Const) and isinstance(payload.value, bytes) \
                and (payload.length is None or payload.length == len(payload.value)) \
                and len(payload.value) <= MAX_NESTED_BYTES:
            yield Artifact(self.artifact.location.child(f"<loads@{event.offset}>"),
                           BytesBlob(payload.value), "nested.pkl", self.artifact.depth + 1,
                           Sniffed(Format.PICKLE, "nested pickle.loads argument"))

    def joblib_inline(self, event: Event, stream: BinaryIO):  # type: ignore[no-untyped-def]
        layout = joblib_array_layout(event.args)
        if layout is None:
            yield self.finding("MLS-PKL-010", event.offset,
                               "joblib NumpyArrayWrapper state does not give a shape and dtype "
                               "mlscan can size, so the inline array data cannot be skipped "
                               "safely; the rest of the stream was not analyzed.")
            raise PickleSyntaxError("unsized joblib inline array", event.offset)
        nbytes, has_objects, padded = layout
        if has_objects:
            nested = yield from self.one_pickle(stream, stream.tell())  # joblib: a nested pickle
            if nested is None:
                raise PickleSyntaxError("broken nested pickle in a joblib object array", stream.tell())
            return
        if padded:
            pad = stream.read(1)
            if pad:
                stream.seek(pad[0], io.SEEK_CUR)
        target = stream.tell() + nbytes
        if target > self.blob.size:
            raise PickleSyntaxError(f"joblib inline array of {nbytes} bytes runs past the end", event.offset)
        stream.seek(target)

    def frame_straddle(self, op: Op, frame_end: int) -> Iterator[Finding]:
        """An opcode crosses its FRAME's declared end: loaders and scanners disagree on what
        follows. Re-parse the straddling bytes from every offset to find hidden imports."""
        window = self.blob.read_at(op.offset + 1, min(op.end - op.offset - 1, RESYNC_WINDOW))
        hidden: dict[str, tuple[int, Verdict]] = {}
        for i in range(len(window)):
            if window[i] not in b"ci\x93\x8cXVSU(":
                continue
            for path, offset, verdict in _quick_imports(window[i:], op.offset + 1 + i, self.policy):
                if verdict.kind in ("dangerous", "dunder"):
                    hidden.setdefault(path, (offset, verdict))
        detail = "; hidden imports found inside it: " + ", ".join(
            f"{p} at byte {o}" for p, (o, _) in hidden.items()) if hidden else ""
        yield self.finding("MLS-PKL-007", op.offset,
                           f"{op.name} at byte {op.offset} runs to byte {op.end}, past the end of its "
                           f"FRAME at byte {frame_end}{detail}. Loaders that honour the frame read "
                           "different opcodes than scanners that do not (CPython issue 154848).")
        for path, (offset, verdict) in hidden.items():
            yield self.finding("MLS-PKL-001", offset,
                               f"{path} hidden inside a frame-straddling {op.name} argument\n"
                               f"why: {verdict.why}", severity=verdict.severity)


def _quick_imports(data: bytes, base: int, policy):  # type: ignore[no-untyped-def]
    """Imports in a short opcode run parsed from ``data`` (errors just end the run)."""
    machine = Machine(1000, 1000)
    out = []
    try:
        for count, op in enumerate(read_ops(io.BytesIO(data))):
            if count > 64:
                break
            machine.step(op)
    except Exception:  # noqa: BLE001 - garbage is expected here
        pass
    for event in machine.events:
        if event.kind == "import" and event.target is not None:
            verdict = policy.judge(event.target.module, event.target.name)
            out.append((verdict.path, base + event.offset, verdict))
    return out


def _could_start_pickle(blob, offset: int) -> bool:  # type: ignore[no-untyped-def]
    """Does a pickle plausibly start at ``offset``: at least a few opcodes parse."""
    data = blob.read_at(offset, 256)
    try:
        for count, _op in enumerate(read_ops(io.BytesIO(data))):
            if count >= 2:
                return True
        return True   # a complete tiny pickle
    except PickleSyntaxError as exc:
        return exc.offset >= 3 and len(data) >= 3
