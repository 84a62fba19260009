"""The outcome of a scan: artifacts seen, findings, and errors, ready for any report format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from scanner.core.finding import FailureMode, Finding, Severity


@dataclass(frozen=True)
class ArtifactRecord:
    """One file or archive member that was examined."""

    location: str
    format: str
    size: int
    sha256: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ScanError:
    """Something went wrong inside mlscan while scanning ``location``.

    Every error is also reported as a fail-closed finding; this list is for the operator (a bug
    report, a missing optional dependency), not for the security verdict.
    """

    location: str
    message: str
    analyzer: str | None = None


@dataclass
class ScanResult:
    targets: list[str] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    # Facts other stages attach (integrity verification, registry, resolved fetch commit...).
    metadata: dict[str, object] = field(default_factory=dict)

    def extend(self, other: ScanResult) -> None:
        self.artifacts.extend(other.artifacts)
        self.findings.extend(other.findings)
        self.errors.extend(other.errors)

    def sort(self) -> None:
        """Deterministic order, whatever the scheduling of parallel jobs."""
        self.artifacts.sort(key=lambda a: a.location)
        self.findings.sort(key=Finding.sort_key)
        self.errors.sort(key=lambda e: (e.location, e.message))

    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def count_by_severity(self) -> dict[str, int]:
        counts = Counter(f.severity for f in self.findings)
        return {s.label: counts.get(s, 0) for s in sorted(Severity, reverse=True)}

    def count_by_failure_mode(self) -> dict[str, int]:
        counts = Counter(f.failure_mode for f in self.findings)
        return {str(int(m)): counts.get(m, 0) for m in FailureMode}

    def failing(self, threshold: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= threshold]
