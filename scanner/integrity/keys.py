"""Signing keys: generation, PEM files, and sign/verify over raw bytes with ``cryptography``.

OMS (OpenSSF model signing) allows EC keys only (P-256/P-384/P-521, hash by curve). mlscan also
signs and verifies Ed25519 as an mlscan extension: such bundles verify with mlscan but not with
``model-signing``, and every report labels them so. RSA is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    PrivateKey: TypeAlias = "ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey"
    PublicKey: TypeAlias = "ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey"

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "ed25519")
DEFAULT_KEY_TYPE = "ecdsa-p256"
PASSPHRASE_ENV = "MLSCAN_KEY_PASSPHRASE"


class KeyFileError(ValueError):
    """A key file that cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class TrustedKey:
    """A public key the user (or the registry) trusts, with where it came from."""

    key: PublicKey
    source: str

    @property
    def hint(self) -> str:
        return key_hint(self.key)

    @property
    def label(self) -> str:
        return algorithm_label(self.key)


def generate(key_type: str = DEFAULT_KEY_TYPE) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyFileError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")


def private_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def public_pem(key: PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hint(key: PublicKey) -> str:
    """OMS ``publicKey.hint``: sha256 over the PEM text (not DER), as model-signing computes
    it. A hint to pick the right key, never a security check."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def key_id(key: PublicKey) -> str:
    """A stable key id for mlscan's own envelopes and the registry: sha256 of the DER SPKI."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def write_keypair(prefix: Path, key: PrivateKey, passphrase: bytes | None = None,
                  *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``prefix.key`` (PKCS#8, mode 0600) and ``prefix.pub`` (SPKI PEM)."""
    private_path, public_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists():
                raise KeyFileError(f"{path} already exists; choose another --out or pass --force")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem(key, passphrase))
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "private key")
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise KeyFileError(f"{path}: the key is encrypted; give its passphrase with --passphrase "
                           f"or the {PASSPHRASE_ENV} environment variable") from None
    except ValueError as exc:
        hint = "wrong passphrase, or " if passphrase else ""
        raise KeyFileError(f"{path}: cannot load the private key ({hint}not a PEM private key: "
                           f"{exc}); create one with `mlscan keygen`") from None
    return _supported(key, path)  # type: ignore[return-value]


def load_public_key(path: Path) -> TrustedKey:
    """A trusted public key from a PEM file (an SPKI key, or the key of a PEM certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "public key")
    key: object
    try:
        if b"BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc}); pass the publisher's .pub "
                           "file (a private key or a bundle will not do)") from None
    return TrustedKey(_check_public(key, path), str(path))


def _check_public(key: object, path: Path) -> PublicKey:
    return _supported(key, path)  # type: ignore[return-value]


def _supported(key: object, path: Path) -> object:
    """``key`` itself if it is an allowed EC or Ed25519 key (private or public)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        _check_curve(key.curve.name, path)
        return key
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return key
    raise KeyFileError(f"{path}: {type(key).__name__} is not supported; OMS signatures use EC "
                       "keys (P-256/P-384/P-521), mlscan also accepts Ed25519")


def _check_curve(name: str, path: Path) -> None:
    if name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise KeyFileError(f"{path}: curve {name} is not allowed by OMS; use P-256, P-384 or P-521")


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _ec_hash(curve_bits: int):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(curve_bits, hashes.SHA512())


def algorithm_label(key: PublicKey) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
        return f"ecdsa-p{bits}-{_ec_hash(bits).name}"
    return "ed25519 (mlscan extension, not OMS)"


def sign(key: PrivateKey, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_ec_hash(key.curve.key_size)))
    return key.sign(data)


def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_ec_hash(key.curve.key_size)))
        else:
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
