"""Finding fingerprints: the one identity a finding keeps across runs.

Baselines, SARIF ``partialFingerprints`` and the JSON report all use the fingerprints computed
here, so "the same finding" means the same thing everywhere.

Two findings are the same when the same rule fires on the same artifact, at the same place
inside it, for the same reason:

* rule id;
* the artifact path relative to its scan root (not the working directory, not absolute), and
  the archive member chain inside it;
* the node name (graph node, tensor or key), which is a stable identity inside a file;
* the evidence, normalised: numbers (byte offsets, sizes, counts), long hex strings (digests)
  and the scan root's own path are replaced by placeholders, because they shift when a file is
  re-saved, moved or checked out elsewhere without the finding changing meaning.

The byte offset itself is never part of the identity. Findings that are identical after
normalisation are told apart by an ordinal in report order (which follows offsets), so every
fingerprint in one run is unique.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence

from scanner.core.finding import Finding
from scanner.policy.paths import ScanRoots

#: Bump when the recipe changes: old baselines then no longer match (a breaking change).
FINGERPRINT_VERSION = "v1"
#: The SARIF partialFingerprints key ("name/version" as the SARIF spec suggests).
SARIF_KEY = f"mlscanFingerprint/{FINGERPRINT_VERSION}"

_HEX = re.compile(r"\b(?:0x)?[0-9a-fA-F]{16,}\b")
_HEX_LITERAL = re.compile(r"\b0x[0-9a-fA-F]+\b")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_SPACE = re.compile(r"\s+")


def evidence_key(evidence: str, roots: ScanRoots | None = None) -> str:
    """The evidence with run-specific details replaced by placeholders."""
    text = evidence
    if roots is not None:
        text = _strip_roots(text, roots)
    text = _HEX.sub("<hex>", text)
    text = _HEX_LITERAL.sub("<n>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()


def _strip_roots(text: str, roots: ScanRoots) -> str:
    """Rewrite paths that depend on where the scan ran to their root-relative form: a file
    under a directory target loses the target prefix, a file target becomes its bare name."""
    replacements: dict[str, str] = {}
    for root in roots.roots:
        if root.is_file:
            name = os.path.basename(root.target)
            replacements[os.path.join(root.directory, name)] = name
            replacements[root.target] = name
        else:
            replacements[root.directory.rstrip(os.sep) + os.sep] = ""
            if root.target not in (".", os.sep):
                replacements[root.target.rstrip(os.sep) + os.sep] = ""
    for form in sorted(replacements, key=len, reverse=True):  # /a/models before models
        replacement = replacements[form]
        text = re.sub(r"(?<![\w./-])" + re.escape(form), lambda _m: replacement, text)  # noqa: B023
    return text


def identity(finding: Finding, roots: ScanRoots | None = None) -> str:
    """The human-readable identity a fingerprint hashes (without the ordinal)."""
    loc = finding.location
    path = roots.relative(loc.path) if roots is not None else loc.path.replace(os.sep, "/")
    parts = (finding.rule_id, path, *loc.members, f"node={loc.node or ''}",
             evidence_key(finding.evidence, roots))
    return "\x1f".join(parts)


def fingerprint_findings(findings: Sequence[Finding], roots: ScanRoots | None = None) -> list[str]:
    """Fingerprints for ``findings`` (in order): 32 hex digits, unique within the list."""
    seen: Counter[str] = Counter()
    out: list[str] = []
    for finding in findings:
        key = identity(finding, roots)
        ordinal = seen[key]
        seen[key] += 1
        digest = hashlib.sha256(f"{FINGERPRINT_VERSION}\x1e{key}\x1e{ordinal}".encode())
        out.append(digest.hexdigest()[:32])
    return out


def fingerprints_for(findings: Sequence[Finding], targets: Sequence[str],
                     known: Sequence[str] = ()) -> list[str]:
    """The fingerprints a report should print: ``known`` ones (computed by the policy stage
    before it filtered the findings) when they line up, else computed now."""
    if len(known) == len(findings):
        return list(known)
    return fingerprint_findings(findings, ScanRoots(targets))
