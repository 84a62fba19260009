"""Markdown report, sized for a pull-request comment or a CI job summary.

A verdict line, counts by severity, a table of findings and collapsible details. Everything that
comes from a scanned file (names, member paths, evidence) is attacker-controlled, so it is only
ever placed inside code spans or fenced code blocks, never as markdown or HTML: a file named
``[click me](https://evil)`` or ``<img src=...>`` must not render as a link or fetch an image in
a reviewer's browser. The output stays under GitHub's 65,536-character comment limit.
"""

from __future__ import annotations

import re

from scanner.core.finding import Finding, Severity
from scanner.core.result import ScanResult
from scanner.report.interface import ReportContext, Reporter

MAX_CHARS = 60_000
MAX_CELL = 160
MAX_EVIDENCE = 2_000
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def code_span(text: str, limit: int = MAX_CELL, in_table: bool = True) -> str:
    """``text`` as an inline code span that nothing inside can break out of."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith("`") or text.endswith("`") or not text.strip():
        text = f" {text} "
    span = f"{fence}{text}{fence}"
    # GFM splits table cells on | even inside code spans; \| is the documented escape.
    return span.replace("|", "\\|") if in_table else span


def code_block(text: str, limit: int = MAX_EVIDENCE) -> str:
    if len(text) > limit:
        text = text[:limit] + "\n… (truncated; the JSON or SARIF report has it in full)"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def plain(text: str) -> str:
    """Escape markdown punctuation in text we wrote ourselves but that could still contain it."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


class MarkdownReporter(Reporter):
    name = "markdown"
    suffix = ".md"

    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        floor = Severity.INFO if ctx.verbosity > 0 else Severity.LOW
        shown = [f for f in result.findings if f.severity >= floor]
        failing = result.failing(ctx.fail_on)
        verdict = "FAIL" if failing else "PASS"
        lines = [f"## mlscan: {verdict}", ""]
        if failing:
            lines.append(f"**{len(failing)} finding(s) at or above `{ctx.fail_on.label}`** in "
                         f"{len(result.artifacts)} artifact(s) scanned.")
        else:
            lines.append(f"No finding at or above `{ctx.fail_on.label}` in "
                         f"{len(result.artifacts)} artifact(s) scanned.")
        lines.append("")
        counts = {label: n for label, n in result.count_by_severity().items() if n}
        if counts:
            lines += ["| severity | findings |", "|---|---:|"]
            lines += [f"| {label} | {n} |" for label, n in counts.items()]
            lines.append("")
        hidden = len(result.findings) - len(shown)
        if shown:
            lines += self._table(shown)
        if hidden:
            lines.append(f"_{hidden} info finding(s) not shown; run with `-v` to include them._")
        if shown or hidden:
            lines.append("")
        footer = self._footer(result, ctx)
        budget = MAX_CHARS - sum(len(line) + 1 for line in lines) - len(footer) - 200
        details = self._details(shown, budget)
        return "\n".join(lines + details + footer) + "\n"

    @staticmethod
    def _table(findings: list[Finding]) -> list[str]:
        rows = ["| severity | rule | location | finding |", "|---|---|---|---|"]
        budget = MAX_CHARS // 2
        for count, f in enumerate(findings):
            row = (f"| {f.severity.label} | `{f.rule_id}` | {code_span(str(f.location))} | "
                   f"{plain(f.title)} |")
            budget -= len(row) + 1
            if budget < 0:
                rows.append(f"| | | | … {len(findings) - count} more finding(s); see the full report |")
                break
            rows.append(row)
        return rows

    @staticmethod
    def _details(findings: list[Finding], budget: int) -> list[str]:
        if not findings:
            return []
        out = ["<details>", "<summary>Evidence and remediation</summary>", ""]
        for count, f in enumerate(findings):
            block = [
                f"#### {f.severity.label}: `{f.rule_id}` {plain(f.title)}", "",
                f"- location: {code_span(str(f.location), 500, in_table=False)}",
                f"- failure mode: {plain(f.failure_mode.label)}; impact: {', '.join(sorted(f.cia))}",
                f"- fix: {plain(f.remediation)}",
                "",
                code_block(f.evidence),
                "",
            ]
            size = sum(len(line) + 1 for line in block)
            if size > budget:
                out += [f"_… {len(findings) - count} more finding(s) left out to fit a comment; "
                        "see the JSON or SARIF report._", ""]
                break
            budget -= size
            out += block
        out += ["</details>", ""]
        return out

    @staticmethod
    def _footer(result: ScanResult, ctx: ReportContext) -> list[str]:
        source = ctx.config.get("source")
        counts = ctx.config.get("counts") or {}
        policy = [f"config {code_span(str(source), 200, in_table=False)}" if source else "no config file"]
        for key, label in (("suppressed", "suppressed"), ("baselined", "in baseline"),
                           ("ignored", "ignored"), ("disabled", "rule disabled")):
            if counts.get(key):
                policy.append(f"{counts[key]} {label}")
        line = f"<sub>mlscan {plain(ctx.tool_version)} · fail-on {ctx.fail_on.label} · {' · '.join(policy)}"
        if result.errors:
            line += f" · {len(result.errors)} scan error(s)"
        return [line + "</sub>"]
