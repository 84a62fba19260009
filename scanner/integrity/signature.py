"""Trust decisions on a parsed OMS bundle: which key or certificate chain signed it.

Trust comes only from what the user (or the registry) supplies: public keys, or explicit root
certificates. A key embedded in a bundle is never trusted, and there is no fallback to a public
CA bundle. Keyless Sigstore bundles need the Fulcio/Rekor machinery and a TUF-delivered trusted
root; they are reported as present but not verified.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from scanner.integrity import dsse
from scanner.integrity.interface import SignatureCheck, SignatureStatus
from scanner.integrity.keys import (
    KeyFileError,
    TrustedKey,
    algorithm_label,
    key_hint,
    key_id,
    public_pem,
)
from scanner.integrity.oms import ParsedBundle, legacy_key_matches


def check_bundle(parsed: ParsedBundle, trusted_keys: Sequence[TrustedKey],
                 cert_roots: Sequence[bytes] = (), now: datetime.datetime | None = None
                 ) -> SignatureCheck:
    if parsed.unsupported:
        return SignatureCheck(SignatureStatus.UNVERIFIED, parsed.method, detail=parsed.problem)
    if parsed.problem or parsed.envelope is None:
        return SignatureCheck(SignatureStatus.BAD, parsed.method,
                              detail=parsed.problem or "no DSSE envelope")
    if parsed.method == "sigstore":
        return SignatureCheck(
            SignatureStatus.UNVERIFIED, "sigstore",
            detail="keyless Sigstore signature present but not verified: it needs the Sigstore "
                   "trusted root and transparency log; verify it with `model_signing verify "
                   "sigstore`, or re-sign with a key or certificate")
    if parsed.method == "certificate":
        return _check_certificate(parsed, cert_roots, now)
    return _check_key(parsed, trusted_keys)


def _check_key(parsed: ParsedBundle, trusted_keys: Sequence[TrustedKey]) -> SignatureCheck:
    assert parsed.envelope is not None
    if not trusted_keys:
        return SignatureCheck(SignatureStatus.UNTRUSTED, "key", signer=parsed.key_hint or "",
                              detail="signed with a key, but no trusted public key was given "
                                     "(--key PUBKEY, or trust one in the registry)")
    good = dsse.verifying_keys(parsed.envelope, trusted_keys)
    if good:
        key = good[0]
        detail = ""
        if parsed.legacy_key_pem and not legacy_key_matches(parsed.legacy_key_pem, public_pem(key.key)):
            detail = "the key embedded in the bundle differs from the trusted key (ignored)"
        return SignatureCheck(SignatureStatus.VERIFIED, "key", signer=f"{key.source} ({key.hint[:16]})",
                              algorithm=key.label, detail=detail, key_id=key_id(key.key))
    hints = {key_hint(k.key) for k in trusted_keys}
    if parsed.key_hint and parsed.key_hint not in hints:
        return SignatureCheck(SignatureStatus.UNTRUSTED, "key", signer=parsed.key_hint,
                              detail=f"signed by another key (hint {parsed.key_hint[:16]}), not by "
                                     f"any of the {len(trusted_keys)} trusted key(s)")
    return SignatureCheck(SignatureStatus.BAD, "key", signer=parsed.key_hint or "",
                          algorithm=", ".join(sorted({algorithm_label(k.key) for k in trusted_keys})),
                          detail="the signature does not verify with the trusted key: the signed "
                                 "manifest or the signature was altered")


def load_cert_roots(paths: Sequence[Path]) -> list[bytes]:
    """PEM root certificates (several per file allowed), as DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    roots: list[bytes] = []
    for path in paths:
        try:
            certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot load root certificates from {path}: {exc}") from None
        roots.extend(c.public_bytes(serialization.Encoding.DER) for c in certs)
    return roots


def _check_certificate(parsed: ParsedBundle, cert_roots: Sequence[bytes],
                       now: datetime.datetime | None) -> SignatureCheck:
    from cryptography import x509
    from cryptography.x509.verification import (
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    assert parsed.envelope is not None
    if not parsed.certificates:
        return SignatureCheck(SignatureStatus.BAD, "certificate", detail="empty certificate chain")
    try:
        chain = [x509.load_der_x509_certificate(c) for c in parsed.certificates]
    except ValueError as exc:
        return SignatureCheck(SignatureStatus.BAD, "certificate", detail=f"unreadable certificate: {exc}")
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    if not cert_roots:
        return SignatureCheck(SignatureStatus.UNTRUSTED, "certificate", signer=subject,
                              detail="signed with a certificate, but no trusted root was given "
                                     "(--cert-root ROOT.pem); mlscan never falls back to a public CA bundle")
    try:
        roots = [x509.load_der_x509_certificate(r) for r in cert_roots]
        # CA certificates follow the Web PKI rules; the leaf's usage is checked below against
        # the OMS rule (digitalSignature or codeSigning) instead of TLS client auth.
        verifier = (PolicyBuilder().store(Store(roots))
                    .time(now or datetime.datetime.now(datetime.timezone.utc))
                    .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                        ee_policy=ExtensionPolicy.permit_all())
                    .build_client_verifier())
        verifier.verify(leaf, chain[1:])
    except (VerificationError, ValueError) as exc:
        return SignatureCheck(SignatureStatus.UNTRUSTED, "certificate", signer=subject,
                              detail=f"the certificate chain does not lead to a trusted root or is "
                                     f"not valid now: {exc}")
    usage_problem = _code_signing_usage(leaf)
    if usage_problem:
        return SignatureCheck(SignatureStatus.UNTRUSTED, "certificate", signer=subject,
                              detail=usage_problem)
    key = TrustedKey(leaf.public_key(), subject)  # type: ignore[arg-type]
    if not dsse.verifying_keys(parsed.envelope, [key]):
        return SignatureCheck(SignatureStatus.BAD, "certificate", signer=subject,
                              detail="the signature does not verify with the certificate's key")
    return SignatureCheck(SignatureStatus.VERIFIED, "certificate", signer=subject,
                          algorithm=key.label)


def _code_signing_usage(leaf: object) -> str:
    """OMS: the leaf must allow digitalSignature (key usage) or codeSigning (EKU)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    assert isinstance(leaf, x509.Certificate)
    try:
        if leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return ""
    except x509.ExtensionNotFound:
        pass
    try:
        if ExtendedKeyUsageOID.CODE_SIGNING in leaf.extensions.get_extension_for_class(
                x509.ExtendedKeyUsage).value:
            return ""
    except x509.ExtensionNotFound:
        pass
    return "the signing certificate allows neither digitalSignature nor codeSigning"
