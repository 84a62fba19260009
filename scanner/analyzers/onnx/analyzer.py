"""The ONNX analyzer: parse the ModelProto statically and run every ONNX check on it.

Never an inference session, never external data: the protobuf is decoded from the artifact's
bytes with ``onnx.load_model_from_string`` (which does not follow external references) after a
size check, and everything after that reads the in-memory message. A file that does not decode
is reported (with the nesting depth when that is why), never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.finding import Finding, Severity
from scanner.formats.interface import Format


class OnnxAnalyzer(Analyzer):
    name = "onnx"
    formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        from scanner.analyzers.onnx import anomalies, backdoor, external, operators, strings
        from scanner.analyzers.onnx.context import OnnxScan
        from scanner.analyzers.onnx.knowledge import knowledge
        from scanner.analyzers.onnx.walk import ModelView

        kb = knowledge()
        size = artifact.blob.size
        limit = ctx.limits.onnx_model_bytes
        if size > limit:
            yield ctx.finding("MLS-ONX-002", artifact.location,
                              f"{size:,} bytes exceeds the ONNX parse limit of {limit:,} bytes; the "
                              "graph was not parsed or checked")
            return
        model = yield from self.parse(artifact, ctx, kb.protobuf_max_depth)
        if model is None:
            return
        view = ModelView(model, max_depth=ctx.limits.nesting_depth, max_nodes=ctx.limits.onnx_nodes)
        scan = OnnxScan(artifact, ctx, view, kb)
        checks: tuple[Callable[[OnnxScan], Iterator[Finding | Artifact]], ...] = (
            external.check, operators.check, anomalies.check, strings.check, backdoor.check)
        for check in checks:
            yield from check(scan)

    def parse(self, artifact: Artifact, ctx: ScanContext, max_depth: int):  # type: ignore[no-untyped-def]
        """The decoded ModelProto, or None after reporting why it could not be decoded."""
        import onnx
        from google.protobuf.message import DecodeError

        from scanner.analyzers.onnx.wire import measure

        data = artifact.blob.read_at(0, artifact.blob.size)
        try:
            return onnx.load_model_from_string(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        del data
        report = measure(artifact.blob)
        if report.max_depth >= max_depth or "MaxDepth" in error or "depth" in error.lower():
            yield ctx.finding("MLS-ONX-221", artifact.location,
                              f"messages are nested {report.max_depth} levels deep (Python protobuf "
                              f"stops at {max_depth}); the model could not be parsed, so nothing in it "
                              f"was checked, while runtimes with other limits may load it ({error})",
                              severity=Severity.HIGH)
        else:
            detail = f"; wire format: {report.error}" if report.error else ""
            yield ctx.finding("MLS-ONX-001", artifact.location,
                              f"the ONNX protobuf does not decode ({error}{detail})")
        return None
