"""Interop with the OpenSSF ``model-signing`` package (both directions) and certificate bundles.

model-signing is a test extra; the interop tests skip with the reason when it is absent.
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest

from tests.integrity_helpers import cli, ids, keypair, make_model, verify_json


def _model_signing():  # type: ignore[no-untyped-def]
    try:
        from model_signing import signing, verifying
    except ImportError as exc:  # e.g. its undeclared pyOpenSSL dependency is missing
        pytest.skip(f"model-signing not usable ({exc}); pip install model-signing pyOpenSSL")
    return signing, verifying


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384"])
def test_model_signing_bundle_verifies_with_mlscan(tmp_path: Path, key_type: str) -> None:
    signing, _ = _model_signing()
    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path, key_type=key_type)
    signing.Config().use_elliptic_key_signer(private_key=str(private)).sign(model, tmp_path / "m.sig")
    code, report = verify_json(model, "--signature", tmp_path / "m.sig", "--key", public)
    assert code == 0, report["findings"]
    assert report["metadata"]["integrity"]["signature"]["status"] == "verified"
    (model / "config.json").write_text('{"tampered": true}')
    code, report = verify_json(model, "--signature", tmp_path / "m.sig", "--key", public)
    assert code == 1 and ids(report)["MLS-INT-001"] == "critical"


def test_model_signing_bundle_inside_the_model_dir(tmp_path: Path) -> None:
    """model-signing's default: model.sig inside the model, excluded via ignore_paths."""
    signing, _ = _model_signing()
    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path)
    signing.Config().use_elliptic_key_signer(private_key=str(private)).sign(model, model / "model.sig")
    code, report = verify_json(model, "--key", public)
    assert code == 0, report["findings"]


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384"])
def test_mlscan_bundle_verifies_with_model_signing(tmp_path: Path, key_type: str) -> None:
    _, verifying = _model_signing()
    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path, key_type=key_type)
    assert cli("manifest", "sign", model, "--key", private, "-o", tmp_path / "m.sig").exit_code == 0
    verifier = verifying.Config().use_elliptic_key_verifier(public_key=str(public))
    verifier.verify(model, tmp_path / "m.sig")  # raises on failure
    (model / "tokenizer" / "vocab.txt").write_text("tampered")
    with pytest.raises(ValueError):
        verifying.Config().use_elliptic_key_verifier(public_key=str(public)).verify(
            model, tmp_path / "m.sig")


def _certificate_chain(tmp_path: Path, *, expired: bool = False, code_signing: bool = True):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Model Root CA")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme-ml release")]))
               .issuer_name(root_name).public_key(leaf_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=5)).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                              critical=False))
    if code_signing:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    leaf = builder.sign(root_key, hashes.SHA256())
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return leaf_key, leaf, root_pem


def _certificate_bundle(tmp_path: Path, model: Path, **kwargs) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    from scanner.integrity.oms import make_bundle
    from scanner.integrity.session import create_statement

    leaf_key, leaf, root_pem = _certificate_chain(tmp_path, **kwargs)
    bundle = make_bundle(create_statement(model, "sha256", [], []), leaf_key)
    der = leaf.public_bytes(serialization.Encoding.DER)
    bundle["verificationMaterial"] = {
        "x509CertificateChain": {"certificates": [{"rawBytes": base64.b64encode(der).decode()}]},
        "tlogEntries": []}
    sig = tmp_path / "cert.sig"
    sig.write_text(json.dumps(bundle))
    return sig, root_pem


def test_certificate_bundle_with_explicit_root(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    sig, root = _certificate_bundle(tmp_path, model)
    code, report = verify_json(model, "--signature", sig, "--cert-root", root)
    assert code == 0, report["findings"]
    signature = report["metadata"]["integrity"]["signature"]
    assert signature["method"] == "certificate" and "acme-ml release" in signature["signer"]
    code, report = verify_json(model, "--signature", sig)
    assert code == 1 and ids(report)["MLS-SIG-002"] == "high", "no root given: never a public CA"
    (tmp_path / "other").mkdir()
    _, _, other_root = _certificate_chain(tmp_path / "other")
    code, report = verify_json(model, "--signature", sig, "--cert-root", other_root)
    assert code == 1 and "MLS-SIG-002" in ids(report)


def test_expired_or_wrong_usage_certificate_is_not_trusted(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sig, root = _certificate_bundle(tmp_path / "a", model, expired=True)
    code, report = verify_json(model, "--signature", sig, "--cert-root", root)
    assert code == 1 and "MLS-SIG-002" in ids(report)
    sig, root = _certificate_bundle(tmp_path / "b", model, code_signing=False)
    code, report = verify_json(model, "--signature", sig, "--cert-root", root)
    assert code == 1 and "MLS-SIG-002" in ids(report)
