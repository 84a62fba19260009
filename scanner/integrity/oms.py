"""OpenSSF model signing (OMS) bundles: Sigstore bundle v0.3 > DSSE > in-toto Statement v1 >
predicate ``https://model_signing/signature/v1.0`` with per-file ``resources``.

Reading follows "verify what the bundle says": resources are taken in the listed order to
recompute the root digest, names are compared as a set, and the known divergences between the
spec and model-signing (resource order, ``"."`` as a single-file name, ``shard_size`` as a
float, ``keyid`` absent/""/null, legacy ``rawBytes`` keys) are all accepted. Writing follows the
spec (code-point order, ``files`` method), which model-signing also verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scanner.integrity import dsse
from scanner.integrity.interface import (
    Digest,
    Manifest,
    ManifestEntry,
    ManifestError,
    SignatureInfo,
)
from scanner.integrity.keys import key_hint

if TYPE_CHECKING:
    from scanner.integrity.keys import PrivateKey

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
LEGACY_PREDICATE_TYPES = ("https://model_signing/Digests/v0.1",)
DEFAULT_IGNORES = (".git", ".gitattributes", ".github", ".gitignore")
HASH_TYPES = ("sha256", "sha512", "blake2b")


def root_digest(digests: Sequence[str]) -> str:
    """OMS subject digest: sha256 over the concatenated raw resource digests, in listed order."""
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def build_statement(model_name: str, files: dict[str, str], hash_type: str,
                    ignore_paths: Sequence[str] = DEFAULT_IGNORES) -> bytes:
    """The in-toto statement (the DSSE payload) for ``files`` (relative POSIX path -> hex)."""
    resources = [{"name": name, "algorithm": hash_type, "digest": files[name]}
                 for name in sorted(files)]  # spec order: Unicode code points
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name,
                     "digest": {"sha256": root_digest([r["digest"] for r in resources])}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources,
            "serialization": {"method": "files", "hash_type": hash_type, "allow_symlinks": False,
                              "ignore_paths": sorted(set(ignore_paths))},
        },
    }
    return json.dumps(statement, indent=2).encode()


def make_bundle(statement: bytes, key: PrivateKey) -> dict[str, object]:
    envelope = dsse.sign_envelope(dsse.INTOTO_PAYLOAD_TYPE, statement, [key], key_ids=False)
    return {"mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())},
                                     "tlogEntries": []},
            "dsseEnvelope": envelope}


class UnsupportedManifest(ManifestError):
    """A well-formed manifest shape this version cannot verify (never treated as verified)."""


@dataclass(frozen=True)
class ParsedBundle:
    """A bundle taken apart, before any trust decision. ``problem`` is set when the bundle is
    malformed in a way that makes its signature bad (a critical finding, not an input error)."""

    method: str                          # "key" | "certificate" | "sigstore"
    envelope: dsse.Envelope | None
    manifest: Manifest | None
    key_hint: str | None = None
    legacy_key_pem: bytes | None = None
    certificates: tuple[bytes, ...] = ()  # DER, leaf first
    problem: str = ""
    unsupported: bool = False  # a valid but unsupported shape (pre-1.0, shards): not verified


def is_bundle(raw: object) -> bool:
    return isinstance(raw, dict) and str(raw.get("mediaType", "")).startswith(BUNDLE_MEDIA_PREFIX)


def parse_bundle(raw: object, source: str) -> ParsedBundle:
    if not isinstance(raw, dict):
        return ParsedBundle("key", None, None, problem="the bundle is not a JSON object")
    material = raw.get("verificationMaterial")
    material = material if isinstance(material, dict) else {}
    method, hint, legacy_pem, chain = _material(material)
    try:
        envelope = dsse.parse_envelope(raw.get("dsseEnvelope"))
    except dsse.EnvelopeError as exc:
        return ParsedBundle(method, None, None, hint, legacy_pem, chain, problem=str(exc))
    if envelope.payload_type != dsse.INTOTO_PAYLOAD_TYPE:
        return ParsedBundle(method, envelope, None, hint, legacy_pem, chain,
                            problem=f"unexpected payloadType {envelope.payload_type!r}")
    try:
        manifest = parse_statement(envelope.payload, source, SignatureInfo(method, hint))
    except ManifestError as exc:
        return ParsedBundle(method, envelope, None, hint, legacy_pem, chain, problem=str(exc),
                            unsupported=isinstance(exc, UnsupportedManifest))
    return ParsedBundle(method, envelope, manifest, hint, legacy_pem, chain)


def _material(material: dict[str, object]) -> tuple[str, str | None, bytes | None, tuple[bytes, ...]]:
    chain_field = material.get("x509CertificateChain")
    if isinstance(chain_field, dict):
        certs = chain_field.get("certificates")
        raw = [c.get("rawBytes") for c in certs if isinstance(c, dict)] if isinstance(certs, list) else []
        return "certificate", None, None, tuple(_b64(r) for r in raw if isinstance(r, str))
    if "certificate" in material or material.get("tlogEntries"):
        return "sigstore", None, None, ()
    public = material.get("publicKey")
    public = public if isinstance(public, dict) else {}
    hint = public.get("hint") if isinstance(public.get("hint"), str) else None
    raw_bytes = public.get("rawBytes")
    legacy = _b64(raw_bytes) if isinstance(raw_bytes, str) else None
    return "key", hint, legacy, ()  # type: ignore[return-value]


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_statement(payload: bytes, source: str, signature: SignatureInfo | None) -> Manifest:
    """The OMS manifest in an in-toto statement (signed payload or ``mlscan manifest create``)."""
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{source}: the statement is not JSON ({exc})") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise ManifestError(f"{source}: not an in-toto Statement v1")
    predicate_type = statement.get("predicateType")
    if predicate_type in LEGACY_PREDICATE_TYPES:
        raise UnsupportedManifest(f"{source}: a pre-1.0 model-signing signature ({predicate_type}); "
                            "re-sign the model with model-signing >= 1.0 or `mlscan manifest sign`")
    if predicate_type != PREDICATE_TYPE:
        raise ManifestError(f"{source}: predicateType {predicate_type!r} is not an OMS manifest")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise ManifestError(f"{source}: the statement has no predicate")
    serialization = predicate.get("serialization")
    serialization = serialization if isinstance(serialization, dict) else {}
    method = serialization.get("method", "files")
    if method != "files":
        raise UnsupportedManifest(f"{source}: serialization method {method!r} is not supported by this "
                            "mlscan version (only 'files'); re-sign with file serialization")
    hash_type = str(serialization.get("hash_type", "sha256"))
    resources = predicate.get("resources")
    if not isinstance(resources, list):
        raise ManifestError(f"{source}: the predicate has no resources list")
    entries, digests = [], []
    for item in resources:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not isinstance(item.get("digest"), str):
            raise ManifestError(f"{source}: a resource lacks a string name or digest")
        algorithm = str(item.get("algorithm") or hash_type)
        value = item["digest"].lower()
        try:
            bytes.fromhex(value)
        except ValueError:
            raise ManifestError(f"{source}: resource {item['name']!r} has a non-hex digest") from None
        digests.append(value)
        entries.append(ManifestEntry(item["name"], Digest(algorithm, value)))
    subject = statement.get("subject")
    claimed = None
    if isinstance(subject, list) and subject and isinstance(subject[0], dict):
        digest = subject[0].get("digest")
        claimed = digest.get("sha256") if isinstance(digest, dict) else None
    computed = root_digest(digests)
    if claimed != computed:
        raise ManifestError(f"{source}: the subject digest {claimed} does not match the resources "
                            f"(computed {computed}); the manifest is inconsistent")
    ignores = serialization.get("ignore_paths", [])
    return Manifest(tuple(entries), "oms", source,
                    frozenset(p for p in ignores if isinstance(p, str)) if isinstance(ignores, list)
                    else frozenset(),
                    allow_symlinks=bool(serialization.get("allow_symlinks", False)),
                    signature=signature, root_digest=computed)


def legacy_key_matches(legacy_pem: bytes, pem: bytes) -> bool:
    """Pre-1.1 bundles embed the signer's key as base64(PEM) (sometimes DER)."""
    return legacy_pem.strip() == pem.strip() or _der_of(pem) == legacy_pem


def _der_of(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return _b64(body.decode("ascii", "replace"))
