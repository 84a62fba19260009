"""JSON report. Its shape is versioned by ``schema_version`` (semantic versioning: a breaking
change bumps the major) and documented in README.md."""

from __future__ import annotations

import json
from typing import Any

from scanner.core.finding import Finding
from scanner.core.result import ScanResult
from scanner.report.interface import ReportContext, Reporter

SCHEMA_VERSION = "1.0.0"


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    loc = finding.location
    return {
        "rule_id": finding.rule_id,
        "title": finding.title,
        "severity": finding.severity.label,
        "failure_mode": {"id": int(finding.failure_mode), "name": finding.failure_mode.label},
        "cia": sorted(finding.cia),
        "location": {
            "display": str(loc),
            "path": loc.path,
            "members": list(loc.members),
            "offset": loc.offset,
            "node": loc.node,
        },
        "evidence": finding.evidence,
        "remediation": finding.remediation,
        "references": list(finding.references),
    }


def result_to_dict(result: ScanResult, ctx: ReportContext) -> dict[str, Any]:
    max_sev = result.max_severity()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "mlscan", "version": ctx.tool_version},
        "targets": list(result.targets),
        "policy": {"fail_on": ctx.fail_on.label, **ctx.config},
        "artifacts": [
            {"path": a.location, "format": a.format, "size": a.size, "sha256": a.sha256,
             "detail": a.detail}
            for a in result.artifacts
        ],
        "findings": [finding_to_dict(f) for f in result.findings],
        "summary": {
            "artifacts": len(result.artifacts),
            "findings": len(result.findings),
            "by_severity": result.count_by_severity(),
            "by_failure_mode": result.count_by_failure_mode(),
            "max_severity": max_sev.label if max_sev is not None else None,
            "failing": len(result.failing(ctx.fail_on)),
            "exit_code": ctx.exit_code,
        },
        "errors": [
            {"location": e.location, "message": e.message, "analyzer": e.analyzer}
            for e in result.errors
        ],
        "metadata": result.metadata,
    }


class JsonReporter(Reporter):
    name = "json"
    suffix = ".json"

    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        return json.dumps(result_to_dict(result, ctx), indent=2, sort_keys=False, default=str) + "\n"
