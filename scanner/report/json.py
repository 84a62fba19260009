"""JSON report: the machine-readable record of a scan.

Its shape is published as a JSON Schema in ``schemas/report.schema.json`` and versioned by
``schema_version`` (semantic versioning): adding a field bumps the minor version, renaming,
removing or retyping one bumps the major, and the schema file changes in the same commit.

1.1.0: ``findings[].fingerprint`` (stable across runs, see scanner/policy/fingerprint.py);
``policy`` describes the configuration used (source file, rule selection, suppressions,
baseline, and what each filtered).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from scanner.core.finding import Finding
from scanner.core.result import ScanResult
from scanner.policy.fingerprint import fingerprints_for
from scanner.report.interface import ReportContext, Reporter

SCHEMA_VERSION = "1.1.0"


def finding_to_dict(finding: Finding, fingerprint: str | None = None) -> dict[str, Any]:
    loc = finding.location
    out: dict[str, Any] = {
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
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    return out


def result_to_dict(result: ScanResult, ctx: ReportContext) -> dict[str, Any]:
    max_sev = result.max_severity()
    fingerprints: Sequence[str] = fingerprints_for(result.findings, result.targets, ctx.fingerprints)
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
        "findings": [finding_to_dict(f, fp) for f, fp in zip(result.findings, fingerprints, strict=True)],
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
