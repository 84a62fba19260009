"""The rule catalogue: stable rule ids and their meaning, loaded from data files.

Rules live in ``signatures/rules/*.toml`` (shipped in the wheel) so that adding or rewording a
rule is a data change, reviewable without reading analyzer code. Users may add their own files
with ``--rules-dir``; ids must be unique across all files, and an id never changes meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from scanner.core.finding import CIA_VALUES, FailureMode, Finding, Location, Severity
from scanner.core.tomlcompat import load_toml

RULE_ID_PATTERN = re.compile(r"^MLS-[A-Z]{3}-\d{3}$")


class RuleError(ValueError):
    """A rule file is malformed. Raised at load time, never during a scan."""


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    description: str
    severity: Severity
    failure_mode: FailureMode
    cia: frozenset[str]
    remediation: str
    references: tuple[str, ...]

    @property
    def area(self) -> str:
        return self.id.split("-")[1]


class RuleCatalogue(Mapping[str, Rule]):
    """All known rules by id, and the one way analyzers turn a rule into a finding."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules: dict[str, Rule] = {}
        for rule in rules:
            if rule.id in self._rules:
                raise RuleError(f"duplicate rule id {rule.id}")
            self._rules[rule.id] = rule

    def __getitem__(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def finding(
        self,
        rule_id: str,
        location: Location,
        evidence: str,
        *,
        severity: Severity | None = None,
        title: str | None = None,
    ) -> Finding:
        """Build a finding for ``rule_id``; an unknown id is a programming error (KeyError)."""
        rule = self._rules[rule_id]
        return Finding(
            rule_id=rule.id,
            title=title or rule.title,
            severity=rule.severity if severity is None else severity,
            failure_mode=rule.failure_mode,
            cia=rule.cia,
            location=location,
            evidence=evidence,
            remediation=rule.remediation,
            references=rule.references,
        )


def _parse_rule(raw: Mapping[str, object], source: Path) -> Rule:
    def text(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RuleError(f"{source}: rule {raw.get('id')!r} needs a non-empty string {key!r}")
        return value.strip()

    rule_id = text("id")
    if not RULE_ID_PATTERN.match(rule_id):
        raise RuleError(f"{source}: rule id {rule_id!r} does not match MLS-<AREA>-<NNN>")
    try:
        severity = Severity.parse(text("severity"))
        failure_mode = FailureMode(int(raw.get("failure_mode", 0)))  # type: ignore[call-overload]
    except ValueError as exc:
        raise RuleError(f"{source}: rule {rule_id}: {exc}") from None
    cia = raw.get("cia", [])
    if not isinstance(cia, list) or not cia or not set(cia) <= CIA_VALUES:
        raise RuleError(f"{source}: rule {rule_id}: cia must be a non-empty subset of {sorted(CIA_VALUES)}")
    refs = raw.get("references", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise RuleError(f"{source}: rule {rule_id}: references must be a list of strings")
    return Rule(
        id=rule_id,
        title=text("title"),
        description=text("description"),
        severity=severity,
        failure_mode=failure_mode,
        cia=frozenset(cia),
        remediation=text("remediation"),
        references=tuple(refs),
    )


def load_rule_files(paths: Iterable[Path]) -> RuleCatalogue:
    rules: list[Rule] = []
    for path in paths:
        data = load_toml(path)
        entries = data.get("rule", [])
        if not isinstance(entries, list):
            raise RuleError(f"{path}: expected [[rule]] tables")
        rules.extend(_parse_rule(entry, path) for entry in entries)
    return RuleCatalogue(rules)


@lru_cache(maxsize=8)
def load_catalogue(extra_dirs: tuple[Path, ...] = ()) -> RuleCatalogue:
    """The shipped rules plus any user rule directories (cached: loading is per process)."""
    from signatures import data_dir

    files = sorted((data_dir() / "rules").glob("*.toml"))
    for directory in extra_dirs:
        files.extend(sorted(Path(directory).glob("*.toml")))
    return load_rule_files(files)
