"""The analyzer contract: one class per format, static parsing only.

An analyzer receives an :class:`Artifact` (bytes plus where they came from) and yields
:class:`~scanner.core.finding.Finding` objects and, for containers, nested ``Artifact`` objects
that the engine scans recursively (with depth limits) by their own content.

Analyzers never execute, import or deserialize the artifact: no ``pickle.load``, no framework
loaders, no template rendering.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from scanner.core.blob import Blob
from scanner.core.finding import Finding, Location, Severity
from scanner.core.limits import Limits
from scanner.core.rules import RuleCatalogue
from scanner.formats.interface import Format, Sniffed


@dataclass(frozen=True)
class Artifact:
    """Bytes to analyze and their provenance.

    ``name`` is the file or member name (used only to compare the extension with the content).
    ``format_hint`` lets a container say what a member is when the bytes cannot (the pickle
    inside a ``.npy`` object array has no header of its own); otherwise the engine sniffs.
    ``path`` is the file on disk for top-level artifacts (analyzers that must look at sibling
    files, e.g. ONNX external data, need it); ``None`` for archive members.
    """

    location: Location
    blob: Blob
    name: str
    depth: int = 0
    format_hint: Sniffed | None = None
    path: Path | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanContext:
    """What every analyzer may consult: the rule catalogue, limits and scan-wide options."""

    rules: RuleCatalogue
    limits: Limits
    root: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def finding(self, rule_id: str, location: Location, evidence: str, *,
                severity: Severity | None = None, title: str | None = None) -> Finding:
        return self.rules.finding(rule_id, location, evidence, severity=severity, title=title)


class Analyzer(ABC):
    """One format. ``formats`` says which sniffed formats it wants."""

    name: ClassVar[str]
    formats: ClassVar[frozenset[Format]]

    def accepts(self, sniffed: Sniffed) -> bool:
        return sniffed.format in self.formats

    @abstractmethod
    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        """Yield findings, and nested artifacts for the engine to scan."""


class LimitExceeded(Exception):
    """Raised by an analyzer or container when a resource limit is hit.

    The engine turns it into a fail-closed finding with ``rule_id`` (an MLS-GEN/ARC rule).
    """

    def __init__(self, rule_id: str, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.location = location
