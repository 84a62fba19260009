"""Baselines: the findings a team already knows about, recorded by fingerprint.

``mlscan scan --write-baseline FILE`` records every finding the scan reports (after ignores and
suppressions); ``--baseline FILE`` then reports only findings whose fingerprint is not in it, so
a pipeline can be switched on for an existing model store and fail only on what is new.

The file is JSON, sorted and without timestamps, so rewriting an unchanged baseline produces no
diff. Each entry keeps the rule, location and title next to the fingerprint for reviewers; only
the fingerprint is used for matching.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scanner.core.finding import Finding
from scanner.policy.config import PolicyError
from scanner.policy.fingerprint import FINGERPRINT_VERSION

BASELINE_FORMAT = 1


def write_baseline(path: Path, findings: Sequence[Finding], fingerprints: Sequence[str],
                   tool_version: str) -> int:
    """Write the baseline atomically; returns the number of entries."""
    entries = sorted(
        ({"fingerprint": fp, "rule_id": f.rule_id, "severity": f.severity.label,
          "location": f.location.artifact, "title": f.title}
         for f, fp in zip(findings, fingerprints, strict=True)),
        key=lambda e: (e["location"], e["rule_id"], e["fingerprint"]))
    document = {
        "mlscan_baseline": BASELINE_FORMAT,
        "fingerprint_version": FINGERPRINT_VERSION,
        "tool_version": tool_version,
        "findings": entries,
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise PolicyError(f"{path}: cannot write the baseline: {exc.strerror or exc}") from None
    return len(entries)


def read_baseline(path: Path) -> frozenset[str]:
    """The fingerprints in a baseline file; any problem is a usage error, never "empty"."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the baseline: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PolicyError(f"{path}: the baseline is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("mlscan_baseline") != BASELINE_FORMAT:
        raise PolicyError(f"{path}: not an mlscan baseline (format {BASELINE_FORMAT}); "
                          "create one with 'mlscan scan --write-baseline FILE'")
    if document.get("fingerprint_version") != FINGERPRINT_VERSION:
        raise PolicyError(f"{path}: baseline fingerprints are {document.get('fingerprint_version')!r}, "
                          f"this mlscan computes {FINGERPRINT_VERSION!r}; write a new baseline")
    entries = document.get("findings")
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("fingerprint"), str) for e in entries):
        raise PolicyError(f"{path}: 'findings' must be a list of entries with a 'fingerprint'")
    return frozenset(e["fingerprint"] for e in entries)
