"""mlscan registry on a real SQLite file: trust rules, lookups in scans, errors, atomicity."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES
from tests.integrity_helpers import cli, ids, keypair, make_model


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    path = tmp_path / "registry.db"
    assert cli("registry", "init", "--registry", path).exit_code == 0
    return path


@pytest.fixture
def published_model(tmp_path: Path, reg: Path) -> tuple[Path, Path, Path]:
    """A signed model, its publisher key trusted, the model registered as acme/bert@1.0."""
    model = make_model(tmp_path / "bert")
    private, public = keypair(tmp_path)
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    assert cli("registry", "trust-key", public, "--name", "acme", "--registry", reg).exit_code == 0
    result = cli("registry", "add", model, "--name", "acme/bert", "--version", "1.0",
                 "--source", "hf://acme/bert@" + "a" * 40, "--registry", reg)
    assert result.exit_code == 0, result.output
    return model, private, public


def scan(*args: object) -> tuple[int, dict]:
    result = cli("scan", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_add_list_show_remove(published_model, reg: Path) -> None:
    listing = json.loads(cli("registry", "list", "--format", "json", "--registry", reg).stdout)
    (model,) = listing["models"]
    assert model["ref"] == "acme/bert@1.0" and model["trust"] == "local trust" and model["files"] == 5
    shown = cli("registry", "show", "acme/bert@1.0", "--registry", reg).output
    assert "hf://acme/bert@" in shown and "model.safetensors" in shown and "signed by:   acme" in shown
    assert cli("registry", "remove", "acme/bert@1.0", "--registry", reg).exit_code == 0
    assert json.loads(cli("registry", "list", "--format", "json", "--registry", reg).stdout)["models"] == []


def test_add_refuses_what_does_not_verify(tmp_path: Path, reg: Path) -> None:
    model = make_model(tmp_path / "m")
    private, public = keypair(tmp_path)
    _, other = keypair(tmp_path, "other")
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    args = ("registry", "add", model, "--name", "x/m", "--version", "1", "--registry", reg)
    result = cli(*args)
    assert result.exit_code == 1 and "no trusted keys" in result.output
    assert cli("registry", "trust-key", other, "--name", "other", "--registry", reg).exit_code == 0
    result = cli(*args)
    assert result.exit_code == 1 and "does not verify" in result.output
    assert cli("registry", "trust-key", public, "--name", "acme", "--registry", reg).exit_code == 0
    (model / "config.json").write_text("{}")
    result = cli(*args)
    assert result.exit_code == 1 and "MLS-INT-001" in result.output
    (model / "model.sig").unlink()
    result = cli(*args)
    assert result.exit_code == 1 and "--allow-unsigned" in result.output


def test_allow_unsigned_is_recorded_and_reported_at_medium(tmp_path: Path, reg: Path) -> None:
    model = make_model(tmp_path / "m")
    result = cli("registry", "add", model, "--name", "x/m", "--version", "1", "--allow-unsigned",
                 "--registry", reg)
    assert result.exit_code == 0 and "UNSIGNED" in result.output
    code, report = scan(model, "--registry", reg)
    assert ids(report)["MLS-REG-005"] == "medium" and code == 0


def test_scan_reports_known_good_with_model_and_version(published_model, reg: Path) -> None:
    model, _, _ = published_model
    code, report = scan(model, "--registry", reg)
    good = [f for f in report["findings"] if f["rule_id"] == "MLS-REG-002"]
    assert code == 0 and len(good) == 5
    assert all("acme/bert@1.0" in f["evidence"] and "local trust" in f["evidence"] for f in good)


def test_denied_digest_anywhere_in_a_scan_is_critical(published_model, reg: Path, tmp_path: Path) -> None:
    bad = SAMPLES / "malicious" / "pickle" / "os_system_p4.pkl"
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert cli("registry", "deny", digest, "--reason", "advisory GHSA-test", "--registry", reg).exit_code == 0
    downloads = tmp_path / "downloads"
    (downloads / "deep" / "er").mkdir(parents=True)
    (downloads / "deep" / "er" / "renamed.bin").write_bytes(bad.read_bytes())
    code, report = scan(downloads, "--registry", reg)
    denied = [f for f in report["findings"] if f["rule_id"] == "MLS-REG-001"]
    assert code == 1 and denied[0]["severity"] == "critical"
    assert "advisory GHSA-test" in denied[0]["evidence"]
    assert denied[0]["location"]["path"] == "deep/er/renamed.bin"


def test_revoked_key_makes_its_models_untrusted(published_model, reg: Path) -> None:
    model, _, _ = published_model
    assert cli("registry", "revoke-key", "acme", "--reason", "key leaked", "--registry", reg).exit_code == 0
    code, report = scan(model, "--registry", reg)
    assert code == 1 and ids(report)["MLS-REG-004"] == "high"
    assert "key leaked" in next(f["evidence"] for f in report["findings"] if f["rule_id"] == "MLS-REG-004")
    listing = cli("registry", "list", "--registry", reg).output
    assert "UNTRUSTED: signer revoked" in listing and "REVOKED" in listing


def test_claimed_model_that_differs_lists_each_file(published_model, reg: Path) -> None:
    model, _, _ = published_model
    (model / "config.json").write_text('{"evil": 1}')
    (model / "empty.txt").unlink()
    (model / "extra.py").write_text("print('hi')\n")
    code, report = scan(model, "--registry", reg, "--model", "acme/bert@1.0")
    differing = {f["location"]["path"]: f for f in report["findings"] if f["rule_id"] == "MLS-REG-003"}
    assert code == 1 and set(differing) == {"config.json", "empty.txt", "extra.py"}
    assert all(f["severity"] == "critical" for f in differing.values())
    # the bundle inside the directory claims the registered root digest: same result unasked
    code, report = scan(model, "--registry", reg)
    assert {f["location"]["path"] for f in report["findings"] if f["rule_id"] == "MLS-REG-003"} == set(differing)


def test_registry_errors_are_one_line_exit_2(tmp_path: Path, reg: Path) -> None:
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database at all " * 100)
    result = cli("registry", "list", "--registry", text_file)
    assert result.exit_code == 2 and "not an mlscan registry" in result.output
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    result = cli("registry", "list", "--registry", other)
    assert result.exit_code == 2 and "not an mlscan registry" in result.output
    result = cli("registry", "list", "--registry", tmp_path / "missing.db")
    assert result.exit_code == 2 and "registry init" in result.output
    db = sqlite3.connect(reg)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    result = cli("registry", "list", "--registry", reg)
    assert result.exit_code == 2 and "newer than this mlscan" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_locked_registry_says_busy_retry(reg: Path, tmp_path: Path) -> None:
    _, public = keypair(tmp_path)
    holder = sqlite3.connect(reg, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = cli("registry", "trust-key", public, "--name", "acme", "--registry", reg)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 2 and "busy" in result.output and "retry" in result.output


def test_writer_killed_mid_write_leaves_the_registry_as_it_was(published_model, reg: Path) -> None:
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from scanner.registry.store import open_registry
        reg = open_registry(__import__('pathlib').Path({str(reg)!r}))
        with reg.write() as db:
            db.execute("DELETE FROM models")
            db.execute("INSERT INTO known_bad VALUES ('ab', 'x', 'local', 'now')")
            os._exit(9)   # killed before commit
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    listing = json.loads(cli("registry", "list", "--format", "json", "--registry", reg).stdout)
    assert [m["ref"] for m in listing["models"]] == ["acme/bert@1.0"] and listing["known_bad"] == []


def test_registry_flows_never_execute_artifacts(tmp_path: Path, reg: Path) -> None:
    from fixtures.builders.canary import CANARY_DIR

    model = tmp_path / "m"
    model.mkdir()
    for sample in sorted((SAMPLES / "malicious" / "pickle").iterdir())[:10]:
        (model / sample.name).write_bytes(sample.read_bytes())
    private, public = keypair(tmp_path)
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    assert cli("registry", "trust-key", public, "--name", "k", "--registry", reg).exit_code == 0
    before = set(CANARY_DIR.iterdir()) if CANARY_DIR.exists() else set()
    assert cli("registry", "add", model, "--name", "evil/m", "--version", "1", "--registry", reg).exit_code == 0
    code, report = scan(model, "--registry", reg)
    assert code == 1 and any(f["rule_id"].startswith("MLS-PKL") for f in report["findings"])
    after = set(CANARY_DIR.iterdir()) if CANARY_DIR.exists() else set()
    assert after == before, "a canary fired: an artifact was executed"
