"""Human report: findings grouped by file, with evidence and what to do, then a summary.

Verbosity: ``-q`` prints only the findings that fail the run (one line each) and the verdict;
the default adds everything from low up with evidence and remediation; ``-v`` adds info findings
and the artifacts examined (format, size, SHA-256); ``-vv`` also the configuration in full.
Colour only when the caller says the output is a terminal (and ``NO_COLOR`` is unset).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from itertools import groupby
from typing import Any

from scanner.core.finding import Finding, Severity
from scanner.core.result import ScanResult
from scanner.report.interface import ReportContext, Reporter

_COLORS = {
    Severity.CRITICAL: "\033[1;31m",
    Severity.HIGH: "\033[31m",
    Severity.MEDIUM: "\033[33m",
    Severity.LOW: "\033[36m",
    Severity.INFO: "\033[2m",
}
_BOLD, _GREEN, _RED, _DIM, _RESET = "\033[1m", "\033[1;32m", "\033[1;31m", "\033[2m", "\033[0m"


def _indent(text: str, prefix: str) -> str:
    return textwrap.indent(text.rstrip(), prefix, lambda _line: True)


def _safe(text: str) -> str:
    """Neutralise terminal control sequences from scanned content (a file name or evidence
    could otherwise rewrite the reviewer's terminal); keep newlines and tabs."""
    return "".join(c if c in "\n\t" or (c.isprintable() and c != "\x1b") else f"\\x{ord(c):02x}"
                   for c in text)


class TextReporter(Reporter):
    name = "text"
    suffix = ".txt"

    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        def paint(code: str, text: str) -> str:
            return f"{code}{text}{_RESET}" if ctx.color else text

        def sev(s: Severity) -> str:
            return paint(_COLORS[s], s.name.ljust(8))

        if ctx.verbosity < 0:
            return self._quiet(result, ctx, sev, paint)
        # info findings are facts, shown only with -v; they still count in the summary.
        floor = Severity.INFO if ctx.verbosity > 0 else Severity.LOW
        shown = [f for f in result.findings if f.severity >= floor]
        lines: list[str] = []
        for path, group in groupby(shown, key=lambda f: f.location.path):
            lines.append(paint(_BOLD, _safe(path)))
            for finding in group:
                lines.extend(self._finding(finding, sev))
            lines.append("")
        if result.errors:
            lines.append("Errors (the affected artifacts are reported as findings above):")
            lines.extend(f"  {_safe(e.location)}: {_safe(e.message)}" for e in result.errors)
            lines.append("")
        integrity = result.metadata.get("integrity")
        if isinstance(integrity, dict):
            lines.extend(self._integrity(integrity))
        if ctx.verbosity > 0 and result.artifacts:
            lines.append("Artifacts:")
            for a in result.artifacts:
                digest = a.sha256 if ctx.verbosity > 1 else (a.sha256 or "")[:16]
                detail = f" ({_safe(a.detail)})" if a.detail else ""
                lines.append(f"  {_safe(a.location)}  {a.format}{detail}  {a.size} B"
                             + (f"  sha256:{digest}" if digest else ""))
            lines.append("")
        lines.extend(self._summary(result, ctx, paint))
        return "\n".join(lines) + "\n"

    def _quiet(self, result: ScanResult, ctx: ReportContext, sev: Callable[[Severity], str],
               paint: Callable[[str, str], str]) -> str:
        lines = [f"{sev(f.severity)} {f.rule_id}  {_safe(str(f.location))}: {f.title}"
                 for f in result.failing(ctx.fail_on)]
        lines.append(self._verdict(result, ctx, paint))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _finding(finding: Finding, sev: Callable[[Severity], str]) -> list[str]:
        out = [f"  {sev(finding.severity)} {finding.rule_id}  {finding.title}"]
        loc = finding.location
        if loc.members or loc.offset is not None or loc.node:
            out.append(f"    at:       {_safe(str(loc))}")
        out.append(f"    mode:     {finding.failure_mode.label}; impact: "
                   f"{', '.join(sorted(finding.cia))}")
        out.append("    evidence:")
        out.append(_indent(_safe(finding.evidence), "      "))
        out.append(f"    fix:      {finding.remediation}")
        if finding.references:
            out.append(f"    refs:     {', '.join(finding.references)}")
        return out

    @staticmethod
    def _integrity(data: dict[str, Any]) -> list[str]:
        """Per file: what was checked, with which algorithm, and the outcome."""
        manifest, sig = data.get("manifest") or {}, data.get("signature")
        lines = [f"Integrity: {manifest.get('kind')} manifest {_safe(str(manifest.get('source') or ''))}"]
        if manifest.get("root_digest"):
            lines.append(f"  root digest: sha256:{manifest['root_digest']}")
        if sig:
            signer = f" by {_safe(sig['signer'])}" if sig.get("signer") else ""
            algorithm = f" [{sig['algorithm']}]" if sig.get("algorithm") else ""
            lines.append(f"  signature: {sig['status']} ({sig['method']}){signer}{algorithm}")
        for item in data.get("files") or []:
            algorithm = item.get("algorithm") or "-"
            cached = " (cached)" if item.get("cached") else ""
            lines.append(f"  {item['status']:<13} {algorithm:<13} {_safe(item['path'])}{cached}")
        lines.extend(f"  note: {_safe(n)}" for n in data.get("notes") or [])
        lines.append("")
        return lines

    @staticmethod
    def _verdict(result: ScanResult, ctx: ReportContext, paint: Callable[[str, str], str]) -> str:
        failing = len(result.failing(ctx.fail_on))
        if failing:
            return paint(_RED, f"FAIL: {failing} finding(s) at or above {ctx.fail_on.label}.")
        return paint(_GREEN, f"PASS: no finding at or above {ctx.fail_on.label}.")

    def _summary(self, result: ScanResult, ctx: ReportContext,
                 paint: Callable[[str, str], str]) -> list[str]:
        by_sev = ", ".join(f"{n} {label}" for label, n in result.count_by_severity().items() if n)
        by_mode = ", ".join(f"#{mode}: {n}" for mode, n in result.count_by_failure_mode().items() if n)
        integrity = result.metadata.get("integrity")
        if not result.artifacts and isinstance(integrity, dict):
            what = f"Verified {len(integrity.get('files') or [])} file(s)"
        else:
            what = f"Scanned {len(result.artifacts)} artifact(s)"
        lines = [
            f"{what} in {len(result.targets)} target(s); "
            f"{len(result.findings)} finding(s){': ' + by_sev if by_sev else ''}.",
        ]
        if by_mode:
            lines.append(f"By failure mode: {by_mode}.")
        policy = self._policy(ctx)
        if policy:
            lines.append(paint(_DIM, policy))
        lines.append(self._verdict(result, ctx, paint))
        return lines

    @staticmethod
    def _policy(ctx: ReportContext) -> str:
        """One line saying which configuration shaped this report, and what it filtered."""
        config = ctx.config
        if not config:
            return ""
        parts = [f"Config: {config['source']}" if config.get("source") else "Config: none"]
        counts = config.get("counts") or {}
        for key, label in (("ignored", "ignored"), ("disabled", "rule disabled"),
                           ("severity_overridden", "severity overridden"),
                           ("suppressed", "suppressed"), ("baselined", "in baseline")):
            if counts.get(key):
                parts.append(f"{counts[key]} {label}")
        if config.get("baseline"):
            parts.append(f"baseline {config['baseline']}")
        if ctx.verbosity > 1:
            for key in ("enable", "disable", "ignore"):
                if config.get(key):
                    parts.append(f"{key}: {', '.join(config[key])}")
            if config.get("severity"):
                parts.append("severity: " + ", ".join(f"{r}={s}" for r, s in config["severity"].items()))
            parts.extend(f"suppress {s['rule']} {s['path']} until {s['expires'] or 'forever'}"
                         for s in config.get("suppressions", []))
        return "; ".join(parts) + "."
