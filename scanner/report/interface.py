"""The reporter contract: a scan result plus the verdict in, one document out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scanner.core.finding import Severity
from scanner.core.result import ScanResult
from scanner.core.rules import RuleCatalogue


@dataclass(frozen=True)
class ReportContext:
    """Everything about the run a report may state besides the findings themselves."""

    fail_on: Severity
    exit_code: int
    rules: RuleCatalogue
    tool_version: str
    color: bool = False
    verbosity: int = 0
    #: the configuration used (scanner.policy ``Policy.describe()``), printed by reports
    config: dict[str, Any] = field(default_factory=dict)
    #: fingerprints of ``result.findings`` in order, from the policy stage (which computes them
    #: before filtering); reports compute them when this is empty or does not line up
    fingerprints: tuple[str, ...] = ()


class Reporter(ABC):
    name: ClassVar[str]
    #: file extension conventionally used for --output
    suffix: ClassVar[str]

    @abstractmethod
    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        """The whole report as text (reports are small: findings, not model bytes)."""
