"""Signed registry metadata (TUF-lite): a versioned root of trust and a short-lived index.

Both are DSSE envelopes signed with the same code as OMS model signatures. The root lists keys
and, per role ("root", "index"), the key ids and the threshold of distinct keys that must sign.
Rotation: root N+1 must be signed by a threshold of root N's root keys *and* of its own. The
index (models, publisher keys, revoked keys, known-bad digests) must be signed by a threshold of
the current root's index keys, must not be expired (freeze attack) and its version must not go
down (rollback attack).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scanner.integrity import dsse
from scanner.integrity.keys import TrustedKey, algorithm_label, key_id, public_pem
from scanner.registry.interface import RegistryError, RegistryRefused

if TYPE_CHECKING:
    from scanner.integrity.keys import PrivateKey

ROOT_PAYLOAD_TYPE = "application/vnd.mlscan.root+json"
INDEX_PAYLOAD_TYPE = "application/vnd.mlscan.index+json"
ROOT_TYPE, INDEX_TYPE = "mlscan/root/v1", "mlscan/index/v1"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def expires_in(days: float) -> str:
    return (utc_now() + datetime.timedelta(days=days)).isoformat(timespec="seconds")


def sign(payload_type: str, payload: dict[str, Any], signers: Sequence[PrivateKey]) -> bytes:
    body = json.dumps(payload, indent=1, sort_keys=True).encode()
    return json.dumps(dsse.sign_envelope(payload_type, body, signers), indent=1).encode() + b"\n"


def root_payload(version: int, keys: Sequence[TrustedKey], threshold: int,
                 expires: str) -> dict[str, Any]:
    ids = sorted(key_id(k.key) for k in keys)
    if not 1 <= threshold <= len(ids):
        raise RegistryError(f"threshold {threshold} must be between 1 and the {len(ids)} root key(s)")
    role = {"keyids": ids, "threshold": threshold}
    return {"_type": ROOT_TYPE, "version": version, "expires": expires,
            "keys": {key_id(k.key): {"alg": algorithm_label(k.key),
                                     "pem": public_pem(k.key).decode()} for k in keys},
            "roles": {"root": role, "index": dict(role)}}


def keys_of(root: dict[str, Any]) -> dict[str, TrustedKey]:
    from cryptography.hazmat.primitives import serialization

    out = {}
    for ident, entry in (root.get("keys") or {}).items():
        try:
            key = serialization.load_pem_public_key(str(entry["pem"]).encode())
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryRefused(f"root metadata has an unreadable key {ident}: {exc}") from None
        trusted = TrustedKey(key, f"root key {ident[:16]}")  # type: ignore[arg-type]
        if key_id(trusted.key) != ident:
            raise RegistryRefused(f"root metadata key id {ident[:16]} does not match its key")
        out[ident] = trusted
    return out


def open_envelope(raw: bytes, payload_type: str, what: str) -> tuple[dsse.Envelope, dict[str, Any]]:
    try:
        envelope = dsse.parse_envelope(json.loads(raw))
        payload = json.loads(envelope.payload)
    except (UnicodeDecodeError, json.JSONDecodeError, dsse.EnvelopeError) as exc:
        raise RegistryRefused(f"{what} is malformed: {exc}") from None
    if envelope.payload_type != payload_type or not isinstance(payload, dict):
        raise RegistryRefused(f"{what} is not {payload_type} metadata")
    return envelope, payload


def check_threshold(envelope: dsse.Envelope, keys: dict[str, TrustedKey], role: dict[str, Any],
                    what: str) -> None:
    allowed = [keys[i] for i in role.get("keyids", []) if i in keys]
    threshold = int(role.get("threshold", 1))
    if threshold < 1:
        raise RegistryRefused(f"{what}: threshold {threshold} is not allowed")
    good = dsse.verifying_keys(envelope, allowed)
    if len(good) < threshold:
        raise RegistryRefused(f"{what} is signed by {len(good)} of the required {threshold} "
                              "trusted key(s); refusing it")


def check_not_expired(payload: dict[str, Any], what: str) -> None:
    try:
        expires = datetime.datetime.fromisoformat(str(payload["expires"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise RegistryRefused(f"{what} has no valid 'expires' time") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.timezone.utc)
    if expires <= utc_now():
        raise RegistryRefused(f"{what} expired at {expires.isoformat()} (a stale or frozen "
                              "mirror); ask the publisher to republish")


def verify_root_update(current: dict[str, Any], raw: bytes, expected_version: int) -> dict[str, Any]:
    """Root N+1, signed by the thresholds of root N and of itself."""
    what = f"root version {expected_version}"
    envelope, payload = open_envelope(raw, ROOT_PAYLOAD_TYPE, what)
    if payload.get("_type") != ROOT_TYPE or payload.get("version") != expected_version:
        raise RegistryRefused(f"{what}: wrong type or version {payload.get('version')!r}")
    check_threshold(envelope, keys_of(current), current["roles"]["root"], f"{what} (old root keys)")
    check_threshold(envelope, keys_of(payload), payload["roles"]["root"], f"{what} (new root keys)")
    return payload


def verify_index(root: dict[str, Any], raw: bytes) -> dict[str, Any]:
    envelope, payload = open_envelope(raw, INDEX_PAYLOAD_TYPE, "index")
    if payload.get("_type") != INDEX_TYPE or not isinstance(payload.get("version"), int):
        raise RegistryRefused("index: wrong type or missing version")
    check_threshold(envelope, keys_of(root), root["roles"]["index"], "index")
    check_not_expired(payload, "index")
    return payload
