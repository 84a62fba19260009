"""mlscan keygen / manifest sign / verify on real files: every integrity and signature finding."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.integrity_helpers import cli, ids, keypair, make_model, verify_json


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    model = make_model(tmp_path / "bert")
    private, public = keypair(tmp_path)
    sig = tmp_path / "bert.sig"
    result = cli("manifest", "sign", model, "--key", private, "-o", sig)
    assert result.exit_code == 0, result.output
    return model, sig, private, public


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_each_key_type_signs_and_verifies(tmp_path: Path, key_type: str) -> None:
    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path, key_type=key_type)
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    assert (model / "model.sig").is_file(), "a directory's signature defaults to MODEL/model.sig"
    code, report = verify_json(model, "--key", public)
    assert code == 0
    assert ids(report) == {"MLS-INT-010": "info"}
    signature = report["metadata"]["integrity"]["signature"]
    assert signature["status"] == "verified"
    expected = {"ecdsa-p256": "ecdsa-p256-sha256", "ecdsa-p384": "ecdsa-p384-sha384",
                "ed25519": "ed25519 (mlscan extension, not OMS)"}[key_type]
    assert signature["algorithm"] == expected
    files = {f["path"]: f for f in report["metadata"]["integrity"]["files"]}
    assert set(files) == {"config.json", "model.safetensors", "tokenizer/vocab.txt",
                          "tokenizer/special_tokens_map.json", "empty.txt"}
    assert all(f["status"] == "match" and f["algorithm"] == "sha256" for f in files.values())


def test_tampered_byte_is_critical(signed) -> None:
    model, sig, _, public = signed
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1
    assert ids(report)["MLS-INT-001"] == "critical"
    mismatch = [f for f in report["findings"] if f["rule_id"] == "MLS-INT-001"]
    assert mismatch[0]["location"]["path"] == "model.safetensors"
    assert "expected" in mismatch[0]["evidence"] and "got" in mismatch[0]["evidence"]


def test_deleted_file_is_missing(signed) -> None:
    model, sig, _, public = signed
    (model / "tokenizer" / "vocab.txt").unlink()
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1 and ids(report)["MLS-INT-002"] == "high"


def test_extra_empty_file_is_not_listed(signed) -> None:
    model, sig, _, public = signed
    (model / "optimizer.pkl").write_bytes(b"")
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1
    extra = [f for f in report["findings"] if f["rule_id"] == "MLS-INT-003"]
    assert extra and extra[0]["severity"] == "high" and "empty file" in extra[0]["evidence"]
    code, report = verify_json(model, "--signature", sig, "--key", public, "--ignore-unsigned-files")
    assert code == 0 and "MLS-INT-003" not in ids(report)


def test_symlink_out_of_the_model_is_reported_and_not_followed(signed, tmp_path: Path) -> None:
    model, sig, _, public = signed
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, model / "link.txt")
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1
    link = [f for f in report["findings"] if f["rule_id"] == "MLS-INT-007"]
    assert link and link[0]["severity"] == "high" and "OUTSIDE" in link[0]["evidence"]


def test_symlink_replacing_a_signed_file_is_not_followed(signed, tmp_path: Path) -> None:
    model, sig, _, public = signed
    copy = tmp_path / "config-copy.json"
    copy.write_bytes((model / "config.json").read_bytes())
    (model / "config.json").unlink()
    os.symlink(copy, model / "config.json")  # same bytes, but elsewhere: still refused
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1 and "MLS-INT-007" in ids(report) and "MLS-INT-010" not in ids(report)


def test_wrong_key_is_not_trusted(signed, tmp_path: Path) -> None:
    model, sig, _, _ = signed
    _, other = keypair(tmp_path, "other")
    code, report = verify_json(model, "--signature", sig, "--key", other)
    assert code == 1 and ids(report)["MLS-SIG-002"] == "high"
    assert report["metadata"]["integrity"]["signature"]["status"] == "untrusted"


def test_wrong_key_without_hint_is_a_bad_signature(signed, tmp_path: Path) -> None:
    model, sig, _, _ = signed
    bundle = json.loads(sig.read_text())
    del bundle["verificationMaterial"]["publicKey"]["hint"]
    sig.write_text(json.dumps(bundle))
    _, other = keypair(tmp_path, "other")
    code, report = verify_json(model, "--signature", sig, "--key", other)
    assert code == 1 and ids(report)["MLS-SIG-001"] == "critical"


def test_no_key_given_is_untrusted(signed) -> None:
    model, sig, _, _ = signed
    code, report = verify_json(model, "--signature", sig)
    assert code == 1 and ids(report)["MLS-SIG-002"] == "high"


def _edit_payload(sig: Path, edit) -> None:  # type: ignore[no-untyped-def]
    bundle = json.loads(sig.read_text())
    envelope = bundle["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    edit(statement)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(bundle))


def test_altered_manifest_breaks_the_signature(signed) -> None:
    model, sig, _, public = signed
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))

    def swap_digest(statement: dict) -> None:  # the attacker updates the manifest to match
        import hashlib

        from scanner.integrity.oms import root_digest

        for resource in statement["predicate"]["resources"]:
            if resource["name"] == "model.safetensors":
                resource["digest"] = hashlib.sha256(bytes(data)).hexdigest()
        statement["subject"][0]["digest"]["sha256"] = root_digest(
            [r["digest"] for r in statement["predicate"]["resources"]])

    _edit_payload(sig, swap_digest)
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1 and ids(report)["MLS-SIG-001"] == "critical"
    assert "MLS-INT-010" not in ids(report)


@pytest.mark.parametrize("damage", ["truncate", "bad-base64", "no-signatures", "not-json"])
def test_corrupted_envelope_is_a_bad_signature(signed, damage: str) -> None:
    model, sig, _, public = signed
    text = sig.read_text()
    bundle = json.loads(text)
    if damage == "truncate":
        sig.write_text(text[: len(text) // 2])
    elif damage == "bad-base64":
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = "!!notbase64!!"
        sig.write_text(json.dumps(bundle))
    elif damage == "no-signatures":
        bundle["dsseEnvelope"]["signatures"] = []
        sig.write_text(json.dumps(bundle))
    else:
        sig.write_bytes(os.urandom(64))
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1 and ids(report)["MLS-SIG-001"] == "critical"


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/passwd", "sub\\..\\..\\x", "CON",
                                  "tokenizer/../../outside.txt", "a/./b"])
def test_traversal_names_in_a_validly_signed_manifest(tmp_path: Path, name: str) -> None:
    from scanner.integrity.keys import load_private_key
    from scanner.integrity.oms import build_statement, make_bundle

    model = make_model(tmp_path / "m")
    (tmp_path / "outside.txt").write_text("not part of the model")
    private, public = keypair(tmp_path)
    statement = build_statement("m", {"config.json": "00" * 32, name: "11" * 32}, "sha256")
    bundle = make_bundle(statement, load_private_key(private))  # the signer is malicious
    sig = tmp_path / "evil.sig"
    sig.write_text(json.dumps(bundle))
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1
    unsafe = [f for f in report["findings"] if f["rule_id"] == "MLS-INT-008"]
    assert unsafe and unsafe[0]["severity"] == "critical" and repr(name) in unsafe[0]["evidence"]
    checked = {f["path"]: f["status"] for f in report["metadata"]["integrity"]["files"]}
    assert checked[name] == "unsafe-name"


def test_signer_ignored_paths_are_reported(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path)
    assert cli("manifest", "sign", model, "--key", private, "--ignore", "tokenizer").exit_code == 0
    (model / "tokenizer" / "vocab.txt").write_text("swapped after signing")
    code, report = verify_json(model, "--key", public)
    assert code == 0, "ignored paths do not fail the run by default"
    ignored = [f for f in report["findings"] if f["rule_id"] == "MLS-INT-004"]
    assert ignored and ignored[0]["location"]["path"] == "tokenizer"
    assert "MLS-INT-010" not in ids(report), "a model with ignored content is not 'verified'"


def test_verification_is_stateless_across_models(tmp_path: Path) -> None:
    """model-transparency PR #650: ignore paths of one verification leaked into the next."""
    from scanner.core.rules import load_catalogue
    from scanner.integrity.keys import load_private_key
    from scanner.integrity.session import TrustInputs, prepare, sign_model
    from scanner.integrity.verify import verify

    private, public = keypair(tmp_path)
    key = load_private_key(private)
    first, second = make_model(tmp_path / "a"), make_model(tmp_path / "b")
    sign_model(first, key, tmp_path / "a.sig", ignore_paths=["notes.pkl"])
    sign_model(second, key, tmp_path / "b.sig")
    (second / "notes.pkl").write_bytes(b"\x80\x04planted")
    trust = TrustInputs.load([public])
    rules = load_catalogue()
    _, findings_a = verify(prepare(first, signature=tmp_path / "a.sig", trust=trust), rules)
    _, findings_b = verify(prepare(second, signature=tmp_path / "b.sig", trust=trust), rules)
    assert [f.rule_id for f in findings_a] == ["MLS-INT-010"]
    assert "MLS-INT-003" in {f.rule_id for f in findings_b}


def test_unsigned_manifest_with_a_key_is_unsigned(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    _, public = keypair(tmp_path)
    sums = tmp_path / "SHA256SUMS"
    assert cli("manifest", "create", model, "--format", "sha256sum", "-o", sums).exit_code == 0
    code, report = verify_json(model, "--manifest", sums)
    assert code == 0 and "MLS-INT-010" in ids(report)
    code, report = verify_json(model, "--manifest", sums, "--key", public)
    assert code == 1 and ids(report)["MLS-SIG-003"] == "high"


def test_keyless_sigstore_bundle_is_present_not_verified(signed) -> None:
    model, sig, _, public = signed
    bundle = json.loads(sig.read_text())
    bundle["verificationMaterial"] = {"certificate": {"rawBytes": "MIIB"},
                                      "tlogEntries": [{"logIndex": "1"}]}
    sig.write_text(json.dumps(bundle))
    code, report = verify_json(model, "--signature", sig, "--key", public)
    assert code == 1 and ids(report)["MLS-SIG-004"] == "high"
    assert report["metadata"]["integrity"]["signature"]["status"] == "unverified"


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    env = {"MLSCAN_KEY_PASSPHRASE": "correct horse"}
    assert cli("keygen", "--out", tmp_path / "k", "--passphrase", env=env).exit_code == 0
    assert b"ENCRYPTED" in (tmp_path / "k.key").read_bytes()
    assert (tmp_path / "k.key").stat().st_mode & 0o077 == 0, "private key must be 0600"
    result = cli("manifest", "sign", model, "--key", tmp_path / "k.key", env={"MLSCAN_KEY_PASSPHRASE": ""})
    assert result.exit_code == 2 and "passphrase" in result.output
    assert cli("manifest", "sign", model, "--key", tmp_path / "k.key", env=env).exit_code == 0
    code, _ = verify_json(model, "--key", tmp_path / "k.pub")
    assert code == 0


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    keypair(tmp_path)
    result = cli("keygen", "--out", tmp_path / "publisher")
    assert result.exit_code == 2 and "already exists" in result.output


def test_unusable_inputs_exit_2_with_a_message(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")
    result = cli("verify", model, "--manifest", bogus)
    assert result.exit_code == 2 and "unknown manifest format" in result.output
    result = cli("verify", model)
    assert result.exit_code == 2 and "no manifest found" in result.output
    result = cli("verify", model, "--manifest", bogus, "--key", bogus)
    assert result.exit_code == 2 and "not a PEM public key" in result.output


def test_cache_skips_unchanged_files_and_catches_in_place_edits(signed, tmp_path: Path) -> None:
    model, sig, _, public = signed
    env = {"MLSCAN_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> dict:
        result = cli("verify", model, "--signature", sig, "--key", public, "--format", "json", env=env)
        return json.loads(result.stdout)

    first = run()
    assert not any(f["cached"] for f in first["metadata"]["integrity"]["files"])
    second = run()
    assert all(f["cached"] for f in second["metadata"]["integrity"]["files"])
    target = model / "model.safetensors"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide the edit from mtime
    third = run()
    assert ids(third)["MLS-INT-001"] == "critical", "ctime/inode changes must defeat the cache"


def test_scan_with_signature_reports_content_and_integrity(tmp_path: Path) -> None:
    from tests.conftest import SAMPLES

    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path)
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    payload = SAMPLES / "malicious" / "pickle" / "os_system_p4.pkl"
    (model / "training_args.bin").write_bytes(payload.read_bytes())
    result = cli("scan", model, "--key", public, "--format", "json")
    report = json.loads(result.stdout)
    found = ids(report)
    assert result.exit_code == 1
    assert found["MLS-INT-003"] == "high"
    assert any(r.startswith("MLS-PKL") for r in found), "content analysis still runs"
    assert report["metadata"]["integrity"]["signature"]["status"] == "verified"


def test_scan_reuses_the_digests_it_computed(tmp_path: Path, monkeypatch) -> None:
    """One read per byte: with --signature, scan must not hash files a second time."""
    import scanner.integrity.verify as verify_module

    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path)
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    calls: list[object] = []
    real = verify_module.hash_files
    monkeypatch.setattr(verify_module, "hash_files",
                        lambda paths, *a, **k: calls.extend(paths) or real(paths, *a, **k))
    result = cli("scan", model, "--key", public, "-q")
    assert result.exit_code == 0, result.output
    assert calls == []
