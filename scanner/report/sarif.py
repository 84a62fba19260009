"""SARIF 2.1.0 report, for GitHub code scanning and every other SARIF consumer.

One run. ``tool.driver.rules`` is the whole rule catalogue, so a consumer can explain any rule
id; results point at the top-level file (the thing a repository holds) and describe where inside
it with logical locations and, for archive members, a related location on the nested artifact
(``artifacts[]`` entries linked to their container by ``parentIndex``). Paths are URIs relative
to the scan root (``uriBaseId`` ``SCANROOT``; further roots ``SCANROOT2``...), resolved by
``originalUriBaseIds``. ``partialFingerprints`` carry the fingerprint the baseline uses.

GitHub maps ``properties.security-severity`` (on the rule) to critical (9.0+), high (7.0-8.9),
medium (4.0-6.9) and low (below 4.0); info rules carry none and are plain notes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scanner.core.finding import FailureMode, Finding, Severity
from scanner.core.result import ScanResult
from scanner.core.rules import Rule
from scanner.policy.fingerprint import SARIF_KEY, fingerprints_for
from scanner.policy.paths import ScanRoots
from scanner.report.interface import ReportContext, Reporter

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
#: GitHub code scanning's security-severity scale (a CVSS-like number as a string)
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}
FAILURE_MODE_TAGS = {
    FailureMode.SUPPLY_CHAIN: "ml-supply-chain",
    FailureMode.BACKDOOR: "ml-backdoor",
    FailureMode.SOFTWARE_DEPENDENCY: "software-dependency-exploit",
}


def _uri(path: str) -> str:
    return quote(path, safe="/")


def _rule_name(title: str) -> str:
    """A SARIF rule name is an identifier-like string: "File could not be read" -> FileCouldNotBeRead."""
    return "".join(word[:1].upper() + word[1:] for word in re.findall(r"[A-Za-z0-9]+", title))


def rule_descriptor(rule: Rule) -> dict[str, Any]:
    refs = list(rule.references)
    help_text = f"{rule.description}\n\nRemediation: {rule.remediation}"
    help_md = f"{rule.description}\n\n**Remediation:** {rule.remediation}"
    if refs:
        help_text += "\n\nReferences: " + ", ".join(refs)
        help_md += "\n\n**References:**\n" + "\n".join(f"- {r}" for r in refs)
    properties: dict[str, Any] = {
        "tags": ["security", FAILURE_MODE_TAGS[rule.failure_mode],
                 f"failure-mode-{int(rule.failure_mode)}", *sorted(rule.cia)],
        "severity": rule.severity.label,
        "failureMode": int(rule.failure_mode),
        "failureModeName": rule.failure_mode.label,
        "cia": sorted(rule.cia),
    }
    if rule.severity in SECURITY_SEVERITY:
        properties["security-severity"] = SECURITY_SEVERITY[rule.severity]
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "name": _rule_name(rule.title),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": help_text, "markdown": help_md},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": properties,
    }
    url = next((r for r in refs if r.startswith(("https://", "http://"))), None)
    if url:
        descriptor["helpUri"] = url
    return descriptor


class _Artifacts:
    """Builds ``run.artifacts``: one entry per scanned file or member, members nested."""

    def __init__(self, roots: ScanRoots) -> None:
        self.roots = roots
        self.entries: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}
        # One base id per distinct root directory, numbered in target order.
        self.base_ids: dict[str, str] = {}
        for root in roots.roots:
            if root.directory not in self.base_ids:
                number = len(self.base_ids) + 1
                self.base_ids[root.directory] = "SCANROOT" if number == 1 else f"SCANROOT{number}"

    def base_id(self, root: int) -> str:
        return self.base_ids[self.roots.roots[root].directory]

    def location(self, path: str) -> dict[str, Any]:
        """The artifactLocation of a top-level file, relative to its scan root."""
        resolved = self.roots.resolve(path)
        if resolved.root is not None:
            return {"uri": _uri(resolved.relative), "uriBaseId": self.base_id(resolved.root)}
        return {"uri": Path(path).resolve().as_uri()}

    def ensure(self, artifact: str, top: bool = False) -> int:
        """The index of ``path!member!...`` (or of a ``top``-level path taken whole), adding it
        and its containers when missing."""
        if artifact in self.index:
            return self.index[artifact]
        container, sep, member = ("", "", "") if top else artifact.rpartition("!")
        if sep:
            parent = self.ensure(container)
            entry: dict[str, Any] = {"location": {"uri": _uri(member)}, "parentIndex": parent}
        else:
            entry = {"location": self.location(artifact)}
        self.entries.append(entry)
        self.index[artifact] = len(self.entries) - 1
        return self.index[artifact]

    def original_uri_base_ids(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for directory, base in self.base_ids.items():
            targets = [r.target for r in self.roots.roots if r.directory == directory]
            out[base] = {"uri": Path(directory).as_uri().rstrip("/") + "/",
                         "description": {"text": "scan root of " + ", ".join(targets)}}
        return out


class SarifReporter(Reporter):
    name = "sarif"
    suffix = ".sarif"

    def render(self, result: ScanResult, ctx: ReportContext) -> str:
        return json.dumps(self.document(result, ctx), indent=2) + "\n"

    def document(self, result: ScanResult, ctx: ReportContext) -> dict[str, Any]:
        roots = ScanRoots(result.targets)
        artifacts = _Artifacts(roots)
        for record in result.artifacts:
            index = artifacts.ensure(record.location)
            entry = artifacts.entries[index]
            entry["length"] = record.size
            if record.sha256:
                entry["hashes"] = {"sha-256": record.sha256}
            entry["properties"] = {"format": record.format, **({"detail": record.detail} if record.detail else {})}
        rule_ids = list(ctx.rules)
        missing = sorted({f.rule_id for f in result.findings} - set(rule_ids))
        descriptors = [rule_descriptor(ctx.rules[r]) for r in rule_ids]
        descriptors.extend({"id": r} for r in missing)  # a finding from a rule file not loaded here
        rule_index = {d["id"]: i for i, d in enumerate(descriptors)}
        fingerprints = fingerprints_for(result.findings, result.targets, ctx.fingerprints)
        results = [self._result(f, fp, rule_index, artifacts)
                   for f, fp in zip(result.findings, fingerprints, strict=True)]
        notifications = [{
            "level": "error",
            "message": {"text": f"{e.location}: {e.message}"},
            "locations": [{"physicalLocation": {
                "artifactLocation": self._top(artifacts, e.location)}}],
            **({"descriptor": {"id": e.analyzer}} if e.analyzer else {}),
        } for e in result.errors]
        run: dict[str, Any] = {
            "tool": {"driver": {
                "name": "mlscan",
                "version": ctx.tool_version,
                "semanticVersion": ctx.tool_version,
                "rules": descriptors,
            }},
            "invocations": [{
                "executionSuccessful": not result.errors,
                "exitCode": ctx.exit_code,
                "exitCodeDescription": {0: "no finding at or above the fail-on severity",
                                        1: "findings at or above the fail-on severity"}.get(
                                            ctx.exit_code, "error"),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
            "artifacts": artifacts.entries,
            "properties": {
                "failOn": ctx.fail_on.label,
                "targets": list(result.targets),
                "policy": {"fail_on": ctx.fail_on.label, **ctx.config},
            },
        }
        if artifacts.base_ids:
            run["originalUriBaseIds"] = artifacts.original_uri_base_ids()
        return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}

    @staticmethod
    def _top(artifacts: _Artifacts, artifact: str) -> dict[str, Any]:
        top = artifact.split("!", 1)[0]
        index = artifacts.ensure(top, top=True)
        return {**artifacts.location(top), "index": index}

    def _result(self, finding: Finding, fingerprint: str, rule_index: dict[str, int],
                artifacts: _Artifacts) -> dict[str, Any]:
        loc = finding.location
        index = artifacts.ensure(loc.path, top=True)
        physical: dict[str, Any] = {"artifactLocation": {**artifacts.location(loc.path), "index": index}}
        if not loc.members and loc.offset is not None:
            physical["region"] = {"byteOffset": loc.offset}
        location: dict[str, Any] = {"physicalLocation": physical}
        logical: list[dict[str, Any]] = []
        if loc.members:
            logical.append({"name": loc.members[-1], "fullyQualifiedName": loc.artifact,
                            "kind": "resource"})
        if loc.node:
            logical.append({"name": loc.node, "fullyQualifiedName": f"{loc.artifact}[{loc.node}]",
                            "kind": "element"})
        if logical:
            location["logicalLocations"] = logical
        out: dict[str, Any] = {
            "ruleId": finding.rule_id,
            "ruleIndex": rule_index[finding.rule_id],
            "level": LEVELS[finding.severity],
            "message": {"text": f"{finding.title}: {finding.evidence} (at {loc})"},
            "locations": [location],
            "partialFingerprints": {SARIF_KEY: fingerprint},
            "properties": {
                "severity": finding.severity.label,
                "failureMode": int(finding.failure_mode),
                "cia": sorted(finding.cia),
                "remediation": finding.remediation,
                **({"security-severity": SECURITY_SEVERITY[finding.severity]}
                   if finding.severity in SECURITY_SEVERITY else {}),
                **({"offset": loc.offset} if loc.offset is not None else {}),
            },
        }
        if loc.members:
            member = artifacts.ensure(loc.artifact)
            related: dict[str, Any] = {"artifactLocation": {**artifacts.entries[member]["location"],
                                                             "index": member}}
            if loc.offset is not None:
                related["region"] = {"byteOffset": loc.offset}
            out["relatedLocations"] = [{"id": 1, "physicalLocation": related,
                                        "message": {"text": f"archive member {loc.artifact}"}}]
        return out
