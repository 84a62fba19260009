"""The finding model: what every analyzer reports, independent of output format.

A finding is classified twice: by the Microsoft/Harvard "Failure Modes in Machine Learning"
taxonomy (which attack it belongs to) and by severity from the ML bug bar (how bad it is). The
classification lives in the rule catalogue (``signatures/rules``); analyzers only pick a rule id,
a location and the evidence, so the same rule can never be reported with two meanings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    """Bug-bar severity. Ordered, so policy can compare with ``>=``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {value!r}; expected one of: {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class FailureMode(enum.IntEnum):
    """Failure modes from "Failure Modes in Machine Learning" that a model file can carry."""

    SUPPLY_CHAIN = 9
    BACKDOOR = 10
    SOFTWARE_DEPENDENCY = 11

    @property
    def label(self) -> str:
        return {
            FailureMode.SUPPLY_CHAIN: "#9 attacking the ML supply chain",
            FailureMode.BACKDOOR: "#10 backdoor ML",
            FailureMode.SOFTWARE_DEPENDENCY: "#11 exploit software dependencies",
        }[self]


CIA_VALUES = frozenset({"confidentiality", "integrity", "availability"})


@dataclass(frozen=True)
class Location:
    """Where a finding is: a file, the chain of archive members inside it, and a position.

    ``path`` is the file as the user named it (relative to the scan root when scanning a
    directory). ``members`` is the chain of nested archive members, outermost first, so
    ``model.pt!archive/data.pkl`` is ``Location("model.pt", ("archive/data.pkl",))``.
    """

    path: str
    members: tuple[str, ...] = ()
    offset: int | None = None
    node: str | None = None

    def child(self, member: str) -> Location:
        """The location of a member nested inside this one."""
        return Location(self.path, (*self.members, member))

    def at(self, offset: int | None = None, node: str | None = None) -> Location:
        """This location narrowed to a byte offset and/or a named node (graph node, key)."""
        return Location(self.path, self.members, offset, node)

    @property
    def artifact(self) -> str:
        """The artifact part (path plus member chain), without offset or node."""
        return "!".join((self.path, *self.members))

    def __str__(self) -> str:
        text = self.artifact
        if self.offset is not None:
            text += f"@{self.offset}"
        if self.node:
            text += f" [{self.node}]"
        return text


@dataclass(frozen=True)
class Finding:
    rule_id: str
    title: str
    severity: Severity
    failure_mode: FailureMode
    cia: frozenset[str]
    location: Location
    evidence: str
    remediation: str
    references: tuple[str, ...] = field(default_factory=tuple)

    def sort_key(self) -> tuple[str, tuple[str, ...], int, int, str, str]:
        loc = self.location
        return (loc.path, loc.members, -1 if loc.offset is None else loc.offset,
                -int(self.severity), self.rule_id, self.evidence)
