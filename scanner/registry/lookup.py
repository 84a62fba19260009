"""Registry lookups for a scan: known-bad digests, known-good models, and claimed identities.

Runs on the sha256 digests the scan already computed over the bytes it analyzed, so a lookup
costs one indexed query per file and no extra read.
"""

from __future__ import annotations

import os
from pathlib import Path

from scanner.core.finding import Finding, Location
from scanner.core.result import ScanResult
from scanner.core.rules import RuleCatalogue
from scanner.registry.interface import KeyRecord, ModelRecord, RegistryError
from scanner.registry.store import Registry


def lookup_findings(registry: Registry, result: ScanResult, rules: RuleCatalogue,
                    target: Path | None = None, claim: tuple[str, str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    revoked = {k.key_id: k for k in registry.keys() if k.revoked}
    digests = {a.location: a.sha256 for a in result.artifacts if a.sha256}
    for location, digest in sorted(digests.items()):
        where = Location(location)
        bad = registry.deny_record(digest)
        if bad is not None:
            findings.append(rules.finding("MLS-REG-001", where, f"sha256 {digest} is denied: "
                                          f"{bad.reason} ({_origin(bad.origin)}, {bad.added_at})"))
            continue
        for model, file in registry.models_with_digest(digest):
            findings.extend(_trust(model, file.path, where, revoked, rules))
    models = _claimed(registry, target, claim)
    for model in models:
        findings.extend(_compare(model, digests, target, rules))
    result.metadata["registry"] = {"path": str(registry.path),
                                   "claimed": [m.ref for m in models]}
    return findings


def _trust(model: ModelRecord, path: str, where: Location, revoked: dict[str, KeyRecord],
           rules: RuleCatalogue) -> list[Finding]:
    label = f"{model.ref} file {path} ({model.trust_label})"
    if model.signed_by in revoked:
        key = revoked[model.signed_by]
        return [rules.finding("MLS-REG-004", where, f"matches {label}, signed by key {key.name} "
                              f"revoked at {key.revoked_at}: {key.revoke_reason}")]
    if model.signed_by is None:
        return [rules.finding("MLS-REG-005", where, f"matches {label}, registered with --allow-unsigned")]
    return [rules.finding("MLS-REG-002", where, f"matches {label}; source {model.source or 'not recorded'}")]


def _claimed(registry: Registry, target: Path | None,
             claim: tuple[str, str] | None) -> list[ModelRecord]:
    if claim is not None:
        model = registry.model(*claim)
        if model is None:
            raise RegistryError(f"--model {claim[0]}@{claim[1]}: not in the registry {registry.path}")
        return [model]
    if target is None or not target.is_dir():
        return []
    from scanner.integrity.session import discover

    signature, _ = discover(target)
    if signature is None:
        return []
    from scanner.integrity.manifests import read_bundle

    parsed = read_bundle(signature)
    if parsed.manifest is None or not parsed.manifest.root_digest:
        return []
    return registry.models_with_root(parsed.manifest.root_digest)


def _compare(model: ModelRecord, digests: dict[str, str], target: Path | None,
             rules: RuleCatalogue) -> list[Finding]:
    """Each file that differs from the registered model (the scan's locations are relative to
    a directory target)."""
    findings = []
    if target is not None and target.is_file():
        shown = os.path.normpath(str(target))
        actual = {target.name: digests.get(shown, "")}
        expected = {f.path: f for f in model.files if f.path.rsplit("/", 1)[-1] == target.name}
    else:
        actual = {loc: d for loc, d in digests.items() if "!" not in loc}
        expected = {f.path: f for f in model.files}
    signature_names = {"model.sig", "model.sig.json", "model.sigstore.json"}
    for path in sorted(set(expected) | set(actual)):
        record, digest = expected.get(path), actual.get(path)
        if record is None:
            if path in signature_names:
                continue
            problem = "is not part of the registered model"
        elif digest is None:
            problem = f"is missing (registered {record.algorithm}:{record.digest})"
        elif record.algorithm == "sha256" and digest != record.digest:
            problem = f"differs: sha256 {digest}, registered {record.digest}"
        else:
            continue
        findings.append(rules.finding("MLS-REG-003", Location(path),
                                      f"claims {model.ref} ({model.trust_label}); {path} {problem}"))
    return findings


def _origin(origin: str) -> str:
    return "local deny list" if origin == "local" else f"from {origin[5:]}"
