"""Human report: findings grouped by file, with evidence and what to do, then a summary."""

from __future__ import annotations

import textwrap
from itertools import groupby

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
_RESET = "\033[0m"


def _indent(text: str, prefix: str) -> str:
    return textwrap.indent(text.rstrip(), prefix, lambda _line: True)


class TextReporter(Reporter):
    name = "text"
    suffix = ".txt"

    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        def sev(s: Severity) -> str:
            label = s.name.ljust(8)
            return f"{_COLORS[s]}{label}{_RESET}" if ctx.color else label

        # info findings are facts, shown only with -v; they still count in the summary.
        floor = Severity.INFO if ctx.verbosity > 0 else Severity.LOW
        shown = [f for f in result.findings if f.severity >= floor]
        lines: list[str] = []
        for path, group in groupby(shown, key=lambda f: f.location.path):
            lines.append(path)
            for finding in group:
                lines.extend(self._finding(finding, sev))
            lines.append("")
        if result.errors:
            lines.append("Errors (the affected artifacts are reported as findings above):")
            lines.extend(f"  {e.location}: {e.message}" for e in result.errors)
            lines.append("")
        lines.extend(self._summary(result, ctx))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _finding(finding: Finding, sev) -> list[str]:  # type: ignore[no-untyped-def]
        out = [f"  {sev(finding.severity)} {finding.rule_id}  {finding.title}"]
        loc = finding.location
        if loc.members or loc.offset is not None or loc.node:
            out.append(f"    at:       {loc}")
        out.append(f"    mode:     {finding.failure_mode.label}; impact: "
                   f"{', '.join(sorted(finding.cia))}")
        out.append("    evidence:")
        out.append(_indent(finding.evidence, "      "))
        out.append(f"    fix:      {finding.remediation}")
        if finding.references:
            out.append(f"    refs:     {', '.join(finding.references)}")
        return out

    @staticmethod
    def _summary(result: ScanResult, ctx: ReportContext) -> list[str]:
        by_sev = ", ".join(f"{n} {label}" for label, n in result.count_by_severity().items() if n)
        by_mode = ", ".join(f"#{mode}: {n}" for mode, n in result.count_by_failure_mode().items() if n)
        failing = len(result.failing(ctx.fail_on))
        lines = [
            f"Scanned {len(result.artifacts)} artifact(s) in {len(result.targets)} target(s); "
            f"{len(result.findings)} finding(s){': ' + by_sev if by_sev else ''}.",
        ]
        if by_mode:
            lines.append(f"By failure mode: {by_mode}.")
        if failing:
            lines.append(f"FAIL: {failing} finding(s) at or above {ctx.fail_on.label}.")
        else:
            lines.append(f"PASS: no finding at or above {ctx.fail_on.label}.")
        return lines
