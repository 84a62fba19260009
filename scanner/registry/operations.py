"""Local registry operations: trust and revoke keys, add and remove models, deny digests.

``add`` is where trust enters: a model is registered only if its OMS bundle verifies against a
trusted, unrevoked key and every file matches (or, with ``allow_unsigned``, it is recorded as
unsigned and reported at medium wherever it is matched).
"""

from __future__ import annotations

import re
from pathlib import Path

from scanner.core.finding import Severity
from scanner.core.rules import load_catalogue
from scanner.integrity import oms
from scanner.integrity.interface import ManifestError, SignatureStatus
from scanner.integrity.keys import (
    KeyFileError,
    TrustedKey,
    algorithm_label,
    key_id,
    load_public_key,
    public_pem,
)
from scanner.registry.interface import FileRecord, KeyRecord, ModelRecord, RegistryError, RegistryRefused
from scanner.registry.store import Registry, insert_model, now

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def trusted_keys(registry: Registry) -> list[TrustedKey]:
    """Unrevoked keys as TrustedKeys, named as in the registry."""
    from cryptography.hazmat.primitives import serialization

    out = []
    for record in registry.keys(include_revoked=False):
        key = serialization.load_pem_public_key(record.pem.encode())
        out.append(TrustedKey(key, record.name))  # type: ignore[arg-type]
    return out


def trust_key(registry: Registry, pub_path: Path, name: str) -> KeyRecord:
    try:
        trusted = load_public_key(pub_path)
    except KeyFileError as exc:
        raise RegistryError(str(exc)) from None
    ident = key_id(trusted.key)
    existing = registry.key(ident) or registry.key(name)
    if existing and existing.origin == "local":
        raise RegistryError(f"key {existing.name} ({existing.key_id[:16]}) is already trusted"
                            + (" and revoked; revocation is permanent" if existing.revoked else ""))
    record = KeyRecord(ident, name, public_pem(trusted.key).decode(),
                       algorithm_label(trusted.key), "local", now())
    with registry.write() as db:
        db.execute("INSERT INTO keys VALUES (?,?,?,?,?,?,?,?)",
                   (record.key_id, record.name, record.pem, record.algorithm, record.origin,
                    record.added_at, None, None))
    return record


def revoke_key(registry: Registry, name_or_id: str, reason: str) -> KeyRecord:
    record = registry.key(name_or_id)
    if record is None:
        raise RegistryError(f"no trusted key named {name_or_id!r}; see `mlscan registry list`")
    if record.revoked:
        raise RegistryError(f"key {record.name} was already revoked at {record.revoked_at}")
    with registry.write() as db:
        db.execute("UPDATE keys SET revoked_at=?, revoke_reason=? WHERE key_id=?",
                   (now(), reason, record.key_id))
    return registry.key(record.key_id) or record


def deny(registry: Registry, sha256: str, reason: str) -> None:
    digest = sha256.lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise RegistryError(f"{sha256!r} is not a sha256 hex digest (64 hex characters)")
    with registry.write() as db:
        db.execute("INSERT OR REPLACE INTO known_bad VALUES (?,?,?,?)", (digest, reason, "local", now()))


def remove(registry: Registry, name: str, version: str) -> None:
    with registry.write() as db:
        if db.execute("DELETE FROM models WHERE name=? AND version=?", (name, version)).rowcount == 0:
            raise RegistryError(f"{name}@{version} is not registered")


def add(registry: Registry, model_dir: Path, name: str, version: str, source: str,
        signature: Path | None, allow_unsigned: bool) -> tuple[ModelRecord, list[str]]:
    """Verify and register; returns the record and the problems that were tolerated."""
    if registry.model(name, version) is not None:
        raise RegistryError(f"{name}@{version} is already registered; remove it first")
    if signature is None and not allow_unsigned:
        from scanner.integrity.session import discover

        signature = discover(model_dir)[0]
        if signature is None:
            raise RegistryRefused(f"{model_dir}: no signature (--signature model.sig); pass "
                                  "--allow-unsigned to record it as unsigned (reported at medium)")
    if signature is None:
        return _add_unsigned(registry, model_dir, name, version, source), []
    record, notes = _verified_record(registry, model_dir, name, version, source, signature)
    with registry.write() as db:
        insert_model(db, record)
    return record, notes


def _verified_record(registry: Registry, model_dir: Path, name: str, version: str, source: str,
                     signature: Path) -> tuple[ModelRecord, list[str]]:
    from scanner.integrity.session import TrustInputs, prepare
    from scanner.integrity.verify import verify

    keys = trusted_keys(registry)
    if not keys:
        raise RegistryRefused("no trusted keys in the registry; add the publisher's key with "
                              "`mlscan registry trust-key PUB --name NAME`")
    try:
        request = prepare(model_dir, signature=signature, trust=TrustInputs(tuple(keys)),
                          require_signature=True)
    except ManifestError as exc:
        raise RegistryError(str(exc)) from None
    verification, findings = verify(request, load_catalogue())
    if verification.signature is None or verification.signature.status is not SignatureStatus.VERIFIED:
        detail = verification.signature.detail if verification.signature else "no signature"
        raise RegistryRefused(f"{signature} does not verify against a trusted, unrevoked key: {detail}")
    blocking = [f for f in findings if f.severity >= Severity.HIGH]
    if blocking:
        listed = "; ".join(f"{f.rule_id} {f.location}: {f.evidence}" for f in blocking[:5])
        raise RegistryRefused(f"{model_dir} does not match its signature: {listed}")
    manifest = request.manifest  # the verified bundle's manifest: no second read or check
    assert manifest is not None
    sizes = {c.path: _size(model_dir, c.path) for c in verification.files}
    files = tuple(FileRecord(e.path, e.digest.algorithm, e.digest.value, sizes.get(e.path))
                  for e in manifest.entries if e.digest is not None)
    notes = [f"{f.rule_id} {f.location}: {f.evidence}" for f in findings if f.severity >= Severity.LOW]
    record = ModelRecord(name, version, manifest.root_digest or "", source, "local", now(),
                         verification.signature.key_id, files, signature.read_bytes())
    return record, notes


def _add_unsigned(registry: Registry, model_dir: Path, name: str, version: str,
                  source: str) -> ModelRecord:
    from scanner.integrity.session import digest_tree

    try:
        digests = digest_tree(model_dir)
    except ManifestError as exc:
        raise RegistryError(str(exc)) from None
    files = tuple(FileRecord(p, "sha256", digests[p], _size(model_dir, p)) for p in sorted(digests))
    record = ModelRecord(name, version, oms.root_digest([f.digest for f in files]), source,
                         "local", now(), None, files, None)
    with registry.write() as db:
        insert_model(db, record)
    return record


def _size(root: Path, rel: str) -> int | None:
    try:
        return (root / rel).stat().st_size if root.is_dir() else root.stat().st_size
    except OSError:
        return None
