"""Policy configuration: ``[tool.mlscan]`` in ``pyproject.toml`` or a ``.mlscan.toml`` file.

Where it is looked for: the **current working directory and its parents**, up to the first
directory that holds a ``.git`` (the project root) or the filesystem root. In each directory
``.mlscan.toml`` wins over ``pyproject.toml``, and a ``pyproject.toml`` without a
``[tool.mlscan]`` table is passed over. The scan targets are deliberately *not* searched: a
downloaded model repository could ship a ``.mlscan.toml`` that switches every rule off.
``--config FILE`` forces a file, ``--no-config`` ignores all of them.

Every key is optional; unknown keys, unknown rule ids and malformed values are errors (exit 2),
so a typo cannot silently weaken the policy::

    [tool.mlscan]
    fail-on = "medium"
    jobs = 2
    enable = ["MLS-*"]              # rule ids or globs to report (default: all)
    disable = ["MLS-GEN-009"]       # rule ids or globs never reported
    ignore = ["tests/data/**"]      # path globs not reported (see below)
    baseline = ".mlscan-baseline.json"
    registry = "models.db"
    required-keys = ["keys/release.pub"]

    [tool.mlscan.severity]
    "MLS-GEN-010" = "low"

    [[tool.mlscan.suppress]]
    rule = "MLS-GEN-007"
    path = "vendor/custom_ops/*.so"
    reason = "custom op built from reviewed source, SEC-1234"
    expires = 2026-06-30

Path globs (``ignore``, ``suppress.path``) match a file's path relative to the configuration
file's directory (like ``.gitignore``) or relative to the scan root; ``**`` crosses
directories, ``*`` does not; a pattern without ``/`` also matches the bare file name; a
directory selects everything below it; ``model.pt!**`` selects the members of an archive.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.core.finding import Severity
from scanner.core.tomlcompat import load_toml

CONFIG_NAME = ".mlscan.toml"
PYPROJECT = "pyproject.toml"


class PolicyError(ValueError):
    """The policy cannot be loaded or applied (bad config, unreadable baseline): exit 2."""


@dataclass(frozen=True)
class Suppression:
    """An accepted finding: which rule, where, why, and until when."""

    rule: str
    path: str
    reason: str
    expires: dt.date | None
    #: where it is written, e.g. "tool.mlscan.suppress[2]" (for messages and fingerprints)
    key: str

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "path": self.path, "reason": self.reason,
                "expires": self.expires.isoformat() if self.expires else None}


@dataclass(frozen=True)
class Config:
    """The settings a configuration file holds; ``None``/empty means "not set"."""

    source: Path | None = None
    fail_on: Severity | None = None
    jobs: int | None = None
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    baseline: Path | None = None
    registry: Path | None = None
    required_keys: tuple[Path, ...] = ()

    def validate(self, rule_ids: Iterable[str]) -> None:
        """Reject rule ids and patterns that name no known rule (typos weaken a policy)."""
        known = sorted(rule_ids)
        where = f"{self.source}: " if self.source else ""
        for key, patterns in (("enable", self.enable), ("disable", self.disable)):
            for pattern in patterns:
                if not any(rule_matches(pattern, rule) for rule in known):
                    raise PolicyError(f"{where}{key}: {pattern!r} matches no rule; see 'mlscan rules'")
        for rule in self.severity:
            if rule not in known:
                raise PolicyError(f"{where}severity: unknown rule {rule!r}; see 'mlscan rules'")
        for sup in self.suppressions:
            if sup.rule not in known:
                raise PolicyError(f"{where}{sup.key}: unknown rule {sup.rule!r}; see 'mlscan rules'")


def rule_matches(pattern: str, rule_id: str) -> bool:
    """A rule pattern: an exact id, a glob (``MLS-PKL-*``) or an id prefix (``MLS-PKL``)."""
    pattern = pattern.strip().upper()
    return (rule_id == pattern or fnmatch.fnmatchcase(rule_id, pattern)
            or rule_id.startswith(pattern.rstrip("-") + "-"))


def find_config(start: Path) -> Path | None:
    """The configuration file for a run started in ``start`` (see the module docstring)."""
    directory = start.resolve()
    while True:
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and _has_tool_table(pyproject):
            return pyproject
        if (directory / ".git").exists() or directory.parent == directory:
            return None
        directory = directory.parent


def _has_tool_table(pyproject: Path) -> bool:
    try:
        data = load_toml(pyproject)
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{pyproject}: cannot read: {exc}") from None
    return isinstance(data.get("tool"), dict) and "mlscan" in data["tool"]


_KEYS = frozenset({"fail-on", "jobs", "enable", "disable", "severity", "ignore", "suppress",
                   "baseline", "registry", "required-keys"})
_SUPPRESS_KEYS = frozenset({"rule", "path", "reason", "expires"})


def load_config(path: Path) -> Config:
    """Read and check one configuration file (``.mlscan.toml`` or ``pyproject.toml``)."""
    try:
        data = load_toml(path)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    if path.name == PYPROJECT or "tool" in data:  # .mlscan.toml may use either layout
        tool = data.get("tool")
        table = tool.get("mlscan") if isinstance(tool, dict) else None
        if table is None:
            raise PolicyError(f"{path}: no [tool.mlscan] table")
        prefix = "tool.mlscan"
    else:
        table, prefix = data, ""
    if not isinstance(table, dict):
        raise PolicyError(f"{path}: [{prefix}] must be a table")
    return _parse(table, path, prefix)


def _parse(table: Mapping[str, Any], path: Path, prefix: str) -> Config:
    raw = {key.replace("_", "-"): value for key, value in table.items()}
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise PolicyError(f"{path}: unknown setting(s) {', '.join(unknown)}; "
                          f"expected some of {', '.join(sorted(_KEYS))}")
    base = path.parent.resolve()

    def where(key: str) -> str:
        return f"{path}: {prefix + '.' if prefix else ''}{key}"

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise PolicyError(f"{where(key)} must be a list of non-empty strings")
        return tuple(v.strip() for v in value)

    def severity(key: str, value: object) -> Severity:
        try:
            return Severity.parse(str(value))
        except ValueError as exc:
            raise PolicyError(f"{where(key)}: {exc}") from None

    def local_path(key: str, value: object) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(f"{where(key)} must be a path string")
        return (base / Path(value).expanduser()).resolve()

    jobs = raw.get("jobs")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise PolicyError(f"{where('jobs')} must be a positive integer")
    overrides = raw.get("severity", {})
    if not isinstance(overrides, dict):
        raise PolicyError(f"{where('severity')} must be a table of rule id = severity")
    return Config(
        source=path.resolve(),
        fail_on=severity("fail-on", raw["fail-on"]) if "fail-on" in raw else None,
        jobs=jobs,
        enable=strings("enable"),
        disable=strings("disable"),
        severity={str(rule).upper(): severity(f"severity.{rule}", value)
                  for rule, value in overrides.items()},
        ignore=strings("ignore"),
        suppressions=_suppressions(raw.get("suppress", []), where("suppress")),
        baseline=local_path("baseline", raw["baseline"]) if "baseline" in raw else None,
        registry=local_path("registry", raw["registry"]) if "registry" in raw else None,
        required_keys=tuple(local_path("required-keys", k) for k in strings("required-keys")),
    )


def _suppressions(entries: object, where: str) -> tuple[Suppression, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PolicyError(f"{where} must be an array of tables ([[...suppress]])")
    out: list[Suppression] = []
    key = where.rsplit(": ", 1)[-1]
    for number, entry in enumerate(entries, 1):
        here = f"{where}[{number}]"
        unknown = sorted(set(entry) - _SUPPRESS_KEYS)
        if unknown:
            raise PolicyError(f"{here}: unknown key(s) {', '.join(unknown)}")
        values: dict[str, str] = {}
        for name in ("rule", "path", "reason"):
            value = entry.get(name)
            if not isinstance(value, str) or not value.strip():
                raise PolicyError(f"{here}: a suppression needs a non-empty {name!r} "
                                  "(rule id, path glob and the reason it is accepted)")
            values[name] = value.strip()
        out.append(Suppression(values["rule"].upper(), values["path"], values["reason"],
                               _date(entry.get("expires"), here), f"{key}[{number}]"))
    return tuple(out)


def _date(value: object, where: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PolicyError(f"{where}: expires must be a date (YYYY-MM-DD), got {value!r}")
