"""DSSE v1 envelopes: the signature layer of OMS bundles and of mlscan's registry metadata.

The signature covers the exact payload bytes through the pre-authentication encoding (PAE), so
no JSON canonicalization is needed. Several signatures may sit on one envelope; a threshold
counts *distinct* trusted keys, so one key signing twice is still one vote.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scanner.integrity import keys as keymod

if TYPE_CHECKING:
    from scanner.integrity.keys import PrivateKey, TrustedKey

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    """The envelope is malformed (not a signature mismatch: that is a verification result)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload_type: str, payload: bytes, signers: Sequence[PrivateKey],
                  *, key_ids: bool = True) -> dict[str, object]:
    """An envelope signed by every key in ``signers``. ``key_ids=False`` writes ``keyid: ""``
    as model-signing does (OMS verifiers must not use it)."""
    message = pae(payload_type, payload)
    signatures = [{"sig": base64.b64encode(keymod.sign(k, message)).decode(),
                   "keyid": keymod.key_id(k.public_key()) if key_ids else ""} for k in signers]
    return {"payload": base64.b64encode(payload).decode(), "payloadType": payload_type,
            "signatures": signatures}


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


def parse_envelope(raw: object) -> Envelope:
    if not isinstance(raw, dict):
        raise EnvelopeError("the DSSE envelope is not a JSON object")
    payload_type, payload, sigs = raw.get("payloadType"), raw.get("payload"), raw.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(payload, str):
        raise EnvelopeError("the DSSE envelope lacks a string payloadType or payload")
    if not isinstance(sigs, list) or not sigs:
        raise EnvelopeError("the DSSE envelope has no signatures")
    decoded: list[bytes] = []
    for entry in sigs:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise EnvelopeError("a DSSE signature entry lacks its 'sig' string")
        decoded.append(_b64(entry["sig"], "signature"))
    return Envelope(payload_type, _b64(payload, "payload"), tuple(decoded))


def verifying_keys(envelope: Envelope, trusted: Iterable[TrustedKey]) -> list[TrustedKey]:
    """The distinct trusted keys with at least one valid signature on the envelope."""
    message = pae(envelope.payload_type, envelope.payload)
    found: dict[str, TrustedKey] = {}
    for candidate in trusted:
        ident = keymod.key_id(candidate.key)
        if ident not in found and any(keymod.verify(candidate.key, s, message)
                                      for s in envelope.signatures):
            found[ident] = candidate
    return list(found.values())


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:  # the spec allows URL-safe base64
            return base64.urlsafe_b64decode(text)
        except (binascii.Error, ValueError):
            raise EnvelopeError(f"the DSSE {what} is not valid base64") from None
