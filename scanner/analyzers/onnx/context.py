"""What every ONNX check receives: the parsed model view, the artifact and the scan context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.analyzers.interface import Artifact, ScanContext
from scanner.analyzers.onnx.knowledge import OnnxKnowledge
from scanner.analyzers.onnx.walk import ModelView
from scanner.core.finding import Finding, Location, Severity


@dataclass
class OnnxScan:
    artifact: Artifact
    ctx: ScanContext
    view: ModelView
    kb: OnnxKnowledge

    @property
    def model(self) -> Any:
        return self.view.model

    def location(self, node: str | None = None) -> Location:
        return self.artifact.location.at(node=node) if node else self.artifact.location

    def finding(self, rule_id: str, evidence: str, node: str | None = None,
                severity: Severity | None = None) -> Finding:
        return self.ctx.finding(rule_id, self.location(node), evidence, severity=severity)


def shorten(items: list[Any], limit: int = 8) -> str:
    """``a, b, c and 12 more``: evidence stays readable when a model repeats a problem."""
    shown = ", ".join(i.decode("utf-8", "backslashreplace") if isinstance(i, bytes) else str(i)
                      for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
