"""JUnit XML report, for CI systems that show test results (GitLab, Jenkins, Azure, CircleCI).

One ``<testcase>`` per artifact (each file and each archive member mlscan examined, plus any
location a finding names that was not an artifact, such as an unreadable file). A testcase fails
when it has findings at or above ``--fail-on``: one ``<failure>`` listing them all (several
``<failure>`` elements per testcase are not understood everywhere). Findings below the threshold
go to ``<system-out>`` so they are visible without failing the build.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict

from scanner.core.finding import Finding
from scanner.core.result import ScanResult
from scanner.report.interface import ReportContext, Reporter

# XML 1.0 cannot carry most control characters, even escaped; evidence from hostile files may.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _describe(finding: Finding) -> str:
    lines = [f"{finding.severity.label.upper()} {finding.rule_id} {finding.title}",
             f"  at: {finding.location}",
             f"  failure mode: {finding.failure_mode.label}; impact: {', '.join(sorted(finding.cia))}",
             f"  evidence: {finding.evidence}",
             f"  fix: {finding.remediation}"]
    if finding.references:
        lines.append(f"  refs: {', '.join(finding.references)}")
    return _clean("\n".join(lines))


class JunitReporter(Reporter):
    name = "junit"
    suffix = ".xml"

    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        by_artifact: dict[str, list[Finding]] = defaultdict(list)
        for finding in result.findings:
            by_artifact[finding.location.artifact].append(finding)
        cases: list[tuple[str, str, str | None]] = [
            (a.location, a.format, a.sha256) for a in result.artifacts]
        known = {a.location for a in result.artifacts}
        cases.extend((loc, "unscanned", None) for loc in sorted(by_artifact) if loc not in known)

        failing_cases = 0
        suite = ET.Element("testsuite", name="mlscan")
        settings = ET.SubElement(suite, "properties")
        for name, value in (("mlscan.version", ctx.tool_version), ("fail_on", ctx.fail_on.label),
                            ("config", str(ctx.config.get("source") or "none"))):
            ET.SubElement(settings, "property", name=name, value=_clean(value))
        for location, fmt, sha256 in cases:
            findings = by_artifact.get(location, [])
            failing = [f for f in findings if f.severity >= ctx.fail_on]
            case = ET.SubElement(suite, "testcase", name=_clean(location),
                                 classname=_clean("mlscan." + location.split("!", 1)[0]))
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="format", value=fmt)
            if sha256:
                ET.SubElement(properties, "property", name="sha256", value=sha256)
            if failing:
                failing_cases += 1
                worst = max(failing, key=lambda f: f.severity)
                rules = ", ".join(sorted({f.rule_id for f in failing}))
                failure = ET.SubElement(
                    case, "failure", type=worst.rule_id,
                    message=_clean(f"{len(failing)} finding(s) at or above {ctx.fail_on.label}: {rules}"))
                failure.text = "\n\n".join(_describe(f) for f in failing)
            below = [f for f in findings if f.severity < ctx.fail_on]
            if below:
                out = ET.SubElement(case, "system-out")
                out.text = "\n\n".join(_describe(f) for f in below)

        suite.set("tests", str(len(cases)))
        suite.set("failures", str(failing_cases))
        # Scan errors are already fail-closed findings (MLS-GEN-002), so no <error> elements.
        suite.set("errors", "0")
        suite.set("skipped", "0")
        if result.errors:
            err = ET.SubElement(suite, "system-err")
            err.text = _clean("\n".join(f"{e.location}: {e.message}" for e in result.errors))
        root = ET.Element("testsuites", name="mlscan", tests=str(len(cases)),
                          failures=str(failing_cases), errors="0")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
