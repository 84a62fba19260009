"""Apply the scan policy to a finished :class:`ScanResult`, before the exit code is decided.

Order matters and is fixed:

1. fingerprints are computed on the complete, unfiltered findings (so a finding keeps its
   fingerprint whatever else is filtered away);
2. ``ignore`` path globs drop findings and artifact records below them;
3. ``enable``/``disable`` rule patterns drop findings of unwanted rules;
4. ``severity`` overrides change a rule's severity;
5. suppressions drop accepted findings; expired and unused suppressions become MLS-POL findings
   (which steps 3 and 4 also apply to);
6. ``--write-baseline`` records what is left;
7. ``--baseline`` drops findings whose fingerprint it lists.

The exit code and every report are computed from what remains.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scanner.core.finding import Finding, Location, Severity
from scanner.core.result import ScanResult
from scanner.core.rules import RuleCatalogue
from scanner.policy.baseline import read_baseline, write_baseline
from scanner.policy.config import Config, PolicyError, Suppression, find_config, load_config, rule_matches
from scanner.policy.fingerprint import fingerprint_findings
from scanner.policy.paths import ScanRoots, glob_matches

DEFAULT_FAIL_ON = Severity.HIGH
COUNTERS = ("ignored", "disabled", "severity_overridden", "suppressed", "baselined",
            "expired_suppressions", "unused_suppressions")


@dataclass(frozen=True)
class PolicyInputs:
    """What the command line said; ``None`` means "not given" (the config or default decides)."""

    config: Path | None = None
    no_config: bool = False
    fail_on: Severity | None = None
    jobs: int | None = None
    baseline: Path | None = None
    write_baseline: Path | None = None


@dataclass(frozen=True)
class PolicyOutcome:
    """What applying the policy did, for the reports and the caller."""

    #: fingerprints of the remaining ``result.findings``, in the same order
    fingerprints: tuple[str, ...]
    counts: Mapping[str, int]
    #: the configuration used, as reports print it (``ReportContext.config``)
    config: dict[str, Any]
    #: things the operator should know (printed on stderr unless --quiet)
    notices: tuple[str, ...] = ()
    baseline_written: int | None = None


@dataclass(frozen=True)
class Policy:
    config: Config = field(default_factory=Config)
    fail_on: Severity = DEFAULT_FAIL_ON
    jobs: int = 1
    baseline: Path | None = None
    write_baseline: Path | None = None
    #: where fail_on / jobs / baseline came from: "command line", "config" or "default"
    origins: Mapping[str, str] = field(default_factory=dict)
    #: the baseline's fingerprints, read by load() so a bad baseline fails before the scan
    known: frozenset[str] | None = None

    @classmethod
    def load(cls, inputs: PolicyInputs, rules: RuleCatalogue, cwd: Path | None = None) -> Policy:
        """Find and read the configuration, check it against the rules, merge the command line
        over it. Raises :class:`PolicyError` for anything wrong (a usage error, exit 2)."""
        if inputs.no_config and inputs.config is not None:
            raise PolicyError("--config and --no-config exclude each other")
        if inputs.no_config:
            config = Config()
        elif inputs.config is not None:
            config = load_config(inputs.config)
        else:
            found = find_config(cwd or Path.cwd())
            config = load_config(found) if found else Config()
        config.validate(rules)

        origins: dict[str, str] = {}

        def pick(name: str, cli: Any, configured: Any, default: Any) -> Any:
            if cli is not None:
                origins[name] = "command line"
                return cli
            if configured is not None:
                origins[name] = "config"
                return configured
            origins[name] = "default"
            return default

        baseline = pick("baseline", inputs.baseline, config.baseline, None)
        return cls(
            config=config,
            fail_on=pick("fail_on", inputs.fail_on, config.fail_on, DEFAULT_FAIL_ON),
            jobs=pick("jobs", inputs.jobs, config.jobs, 1),
            baseline=baseline,
            write_baseline=inputs.write_baseline,
            origins=origins,
            known=read_baseline(baseline) if baseline is not None else None,
        )

    def apply(self, result: ScanResult, rules: RuleCatalogue, tool_version: str,
              today: dt.date | None = None) -> PolicyOutcome:
        """Filter ``result`` in place (see the module docstring for the order)."""
        baseline = self.known
        if baseline is None and self.baseline is not None:
            baseline = read_baseline(self.baseline)
        roots = ScanRoots(result.targets)
        counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        pairs = list(zip(result.findings, fingerprint_findings(result.findings, roots), strict=True))

        scanned = [_split(a.location) for a in result.artifacts]
        if self.config.ignore:
            before = len(pairs)
            pairs = [p for p in pairs if not self._ignored(roots, p[0].location.path,
                                                           p[0].location.members)]
            counts["ignored"] = before - len(pairs)
            result.artifacts = [a for a, (path, members) in zip(result.artifacts, scanned, strict=True)
                                if not self._ignored(roots, path, members)]
            scanned = [_split(a.location) for a in result.artifacts]
        pairs = self._rules(pairs, counts)
        pairs, policy_findings = self._suppress(pairs, roots, scanned, today or dt.date.today(),
                                               counts, rules)
        if policy_findings:
            extra = list(zip(policy_findings, fingerprint_findings(policy_findings, roots), strict=True))
            pairs.extend(self._rules(extra, counts))

        pairs.sort(key=lambda p: p[0].sort_key())
        written = None
        if self.write_baseline is not None:
            written = write_baseline(self.write_baseline, [f for f, _ in pairs],
                                     [fp for _, fp in pairs], tool_version)
        if baseline is not None:
            before = len(pairs)
            pairs = [p for p in pairs if p[1] not in baseline]
            counts["baselined"] = before - len(pairs)
        result.findings = [f for f, _ in pairs]
        return PolicyOutcome(
            fingerprints=tuple(fp for _, fp in pairs),
            counts=dict(counts),
            config=self.describe(dict(counts)),
            notices=self._notices(roots, written),
            baseline_written=written,
        )

    def _names(self, roots: ScanRoots, path: str) -> list[str]:
        """The names a policy glob is matched against: the path relative to the scan root and,
        when the file lies below the configuration file, relative to the config's directory
        (so ``models/x.pkl`` in a project's config works whether ``.`` or ``models`` is
        scanned)."""
        resolved = roots.resolve(path)
        names = [resolved.relative]
        source = self.config.source
        if source is not None and resolved.root is not None:
            absolute = os.path.join(roots.roots[resolved.root].directory, resolved.relative)
            base = str(source.parent)
            if absolute.startswith(base.rstrip(os.sep) + os.sep):
                names.append(os.path.relpath(absolute, base).replace(os.sep, "/"))
        return names

    def _matches(self, pattern: str, roots: ScanRoots, path: str, members: tuple[str, ...]) -> bool:
        return any(glob_matches(pattern, name, members) for name in self._names(roots, path))

    def _ignored(self, roots: ScanRoots, path: str, members: tuple[str, ...]) -> bool:
        return any(self._matches(pattern, roots, path, members) for pattern in self.config.ignore)

    def _rules(self, pairs: list[tuple[Finding, str]], counts: Counter[str]) -> list[tuple[Finding, str]]:
        """Rule enable/disable and severity overrides."""
        config = self.config
        kept: list[tuple[Finding, str]] = []
        for finding, fp in pairs:
            rule = finding.rule_id
            if (config.enable and not any(rule_matches(p, rule) for p in config.enable)) or \
                    any(rule_matches(p, rule) for p in config.disable):
                counts["disabled"] += 1
                continue
            override = config.severity.get(rule)
            if override is not None and override != finding.severity:
                finding = replace(finding, severity=override)
                counts["severity_overridden"] += 1
            kept.append((finding, fp))
        return kept

    def _suppress(self, pairs: list[tuple[Finding, str]], roots: ScanRoots,
                  scanned: list[tuple[str, tuple[str, ...]]], today: dt.date,
                  counts: Counter[str], rules: RuleCatalogue,
                  ) -> tuple[list[tuple[Finding, str]], list[Finding]]:
        suppressions = self.config.suppressions
        if not suppressions:
            return pairs, []
        hits: Counter[Suppression] = Counter()
        kept: list[tuple[Finding, str]] = []
        for finding, fp in pairs:
            loc = finding.location
            matching = [s for s in suppressions if s.rule == finding.rule_id
                        and self._matches(s.path, roots, loc.path, loc.members)]
            for sup in matching:
                hits[sup] += 1
            if any(not s.expired(today) for s in matching):
                counts["suppressed"] += 1
            else:
                kept.append((finding, fp))
        source = self.config.source
        whole_project = source is not None and roots.covers(str(source.parent))
        findings: list[Finding] = []
        for sup in suppressions:
            in_scope = hits[sup] > 0 or whole_project or any(
                self._matches(sup.path, roots, path, members) for path, members in scanned)
            if not in_scope:
                continue  # this scan did not cover the suppression's path (e.g. a pre-commit run)
            if sup.expired(today):
                counts["expired_suppressions"] += 1
                findings.append(self._policy_finding(
                    rules, "MLS-POL-001", sup, f"expired on {sup.expires}; it no longer hides the "
                    f"{hits[sup]} finding(s) it matches, which are reported again. Review them, then "
                    "renew the entry with a new date and reason, or delete it."))
            elif hits[sup] == 0:
                counts["unused_suppressions"] += 1
                findings.append(self._policy_finding(
                    rules, "MLS-POL-002", sup, "matched no finding in this scan; delete it or fix its "
                    "rule id or path glob, or it will silently hide a future finding there."))
        return kept, findings

    def _policy_finding(self, rules: RuleCatalogue, rule_id: str, sup: Suppression,
                        what: str) -> Finding:
        where = str(self.config.source) if self.config.source else "<config>"
        evidence = (f"suppression {sup.key} (rule {sup.rule}, path {sup.path!r}, reason "
                    f"{sup.reason!r}) {what}")
        return rules.finding(rule_id, Location(where).at(node=sup.key), evidence)

    def _notices(self, roots: ScanRoots, written: int | None) -> tuple[str, ...]:
        notices: list[str] = []
        source = self.config.source
        if source is not None and roots.covers(str(source)):
            notices.append(f"using configuration {source}, which is inside the scanned tree; when "
                           "scanning files you do not trust, pass --no-config or --config FILE.")
        if written is not None:
            notices.append(f"wrote {written} finding(s) to the baseline {self.write_baseline}")
        return tuple(notices)

    def describe(self, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The configuration used, for reports (JSON ``policy``, SARIF run properties...)."""
        config = self.config
        return {
            "source": str(config.source) if config.source else None,
            "fail_on_from": self.origins.get("fail_on", "default"),
            "jobs": self.jobs,
            "enable": list(config.enable),
            "disable": list(config.disable),
            "severity": {rule: sev.label for rule, sev in sorted(config.severity.items())},
            "ignore": list(config.ignore),
            "suppressions": [s.describe() for s in config.suppressions],
            "baseline": str(self.baseline) if self.baseline else None,
            "registry": str(config.registry) if config.registry else None,
            "required_keys": [str(k) for k in config.required_keys],
            "counts": dict(counts or {}),
        }


def _split(artifact: str) -> tuple[str, tuple[str, ...]]:
    """An artifact record's ``path!member!member`` back into path and member chain."""
    path, *members = artifact.split("!")
    return path, tuple(members)

