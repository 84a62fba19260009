"""Engine behaviour that every analyzer relies on: fail closed, isolation, determinism,
symlinks, parallel jobs, and hashing the same bytes that are analyzed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

import scanner.engine as engine
from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.blob import HashingFileBlob
from scanner.core.finding import Finding, Severity
from scanner.engine import Scanner, ScanOptions
from scanner.formats.interface import Format
from tests.conftest import rule_ids, scan_paths


class _Exploding(Analyzer):
    name = "exploding"
    formats = frozenset({Format.TEXT})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        if "boom" in artifact.name:
            raise RuntimeError("injected analyzer bug")
        yield ctx.finding("MLS-GEN-009", artifact.location, "analyzed fine")


@pytest.fixture
def exploding(monkeypatch):
    real = engine.analyzers_for
    monkeypatch.setattr(engine, "analyzers_for",
                        lambda fmt: [_Exploding()] if fmt is Format.TEXT else real(fmt))


def test_an_analyzer_bug_is_a_fail_closed_finding_and_the_scan_continues(tmp_path, exploding):
    (tmp_path / "a_boom.txt").write_text("hello")
    (tmp_path / "b_fine.txt").write_text("hello")
    result = scan_paths(tmp_path)
    by_path = {(f.location.path, f.rule_id) for f in result.findings}
    assert ("a_boom.txt", "MLS-GEN-002") in by_path
    assert ("b_fine.txt", "MLS-GEN-009") in by_path
    assert [e.location for e in result.errors] == ["a_boom.txt"]
    assert "injected analyzer bug" in result.errors[0].message
    crash = next(f for f in result.findings if f.rule_id == "MLS-GEN-002")
    assert crash.severity >= Severity.HIGH


def test_unreadable_file_is_reported_not_skipped(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    path = tmp_path / "model.pkl"
    path.write_bytes(b"x")
    path.chmod(0)
    assert "MLS-GEN-001" in rule_ids(scan_paths(tmp_path))


def test_fifo_is_reported_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.pt")
    result = scan_paths(tmp_path)  # would hang forever if the FIFO were opened
    assert ("pipe.pt", "MLS-GEN-001") in {(f.location.path, f.rule_id) for f in result.findings}


def test_symlink_out_of_tree_is_a_finding_and_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("credentials")
    tree = tmp_path / "model"
    tree.mkdir()
    (tree / "weights.bin").symlink_to(outside / "secret.txt")
    (tree / "inner.txt").write_text("ok")
    (tree / "alias.txt").symlink_to(tree / "inner.txt")
    result = scan_paths(tree)
    assert [(f.location.path, f.rule_id) for f in result.findings if f.rule_id == "MLS-GEN-011"] == [
        ("weights.bin", "MLS-GEN-011")]
    assert {a.location for a in result.artifacts} == {"inner.txt"}


def test_extension_that_lies_is_reported(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    findings = {(f.location.path, f.rule_id) for f in scan_paths(tmp_path).findings}
    assert ("model.safetensors", "MLS-GEN-005") in findings


def test_code_disguised_as_data_is_critical(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"cposix\nsystem\n(S'true'\ntR.")
    disguise = [f for f in scan_paths(tmp_path).findings if f.rule_id == "MLS-GEN-006"]
    assert disguise and disguise[0].severity is Severity.CRITICAL


def test_uninspectable_container_fails_closed(tmp_path):
    (tmp_path / "model.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + os.urandom(64))
    result = scan_paths(tmp_path)
    assert any(f.severity >= Severity.HIGH for f in result.findings)


def test_directory_order_is_deterministic_and_parallel_matches_serial(tmp_path):
    for i in range(12):
        sub = tmp_path / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(100 + i))
    serial = Scanner(ScanOptions(jobs=1)).scan([tmp_path])
    parallel = Scanner(ScanOptions(jobs=2)).scan([tmp_path])
    assert [a.location for a in serial.artifacts] == sorted(a.location for a in serial.artifacts)
    assert serial.artifacts == parallel.artifacts
    assert serial.findings == parallel.findings


def test_reported_sha256_is_the_digest_of_the_file(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "blob.bin").write_bytes(data)
    (record,) = scan_paths(tmp_path).artifacts
    assert record.sha256 == hashlib.sha256(data).hexdigest()


def test_hashing_blob_hashes_each_byte_once_whatever_the_read_pattern(tmp_path):
    data = os.urandom(1 << 20)
    path = tmp_path / "x"
    path.write_bytes(data)
    blob = HashingFileBlob(path, ("sha256", "sha512"))
    try:
        blob.read_at(len(data) - 100, 100)   # tail first (zip central directory)
        blob.read_at(0, 10)                   # then the head
        blob.read_at(5, 1000)                 # overlapping read
        blob.read_at(500_000, 10)             # a gap ahead of the hashed prefix
        digests = blob.finish()
    finally:
        blob.close()
    assert digests["sha256"] == hashlib.sha256(data).hexdigest()
    assert digests["sha512"] == hashlib.sha512(data).hexdigest()


def test_file_modified_during_scan_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(1000))
    real_finish = HashingFileBlob.finish

    def finish_after_tamper(self):
        with open(path, "ab") as handle:  # a writer appends while we scan
            handle.write(b"tampered")
        return real_finish(self)

    monkeypatch.setattr(HashingFileBlob, "finish", finish_after_tamper)
    assert "MLS-GEN-008" in rule_ids(scan_paths(path))


def test_missing_target_is_a_usage_error(run_cli, tmp_path):
    result = run_cli("scan", str(tmp_path / "nope.pt"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_exit_code_follows_fail_on(run_cli, tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"\x00\x01\x02garbage")  # unknown content, model name
    assert run_cli("scan", str(tmp_path)).exit_code == 0            # medium < high
    assert run_cli("scan", "--fail-on", "medium", str(tmp_path)).exit_code == 1


def test_json_report_shape(scan_json, tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"\x00\x01\x02garbage")
    code, report = scan_json(tmp_path)
    assert code == 0
    assert report["schema_version"].startswith("1.")
    assert report["artifacts"][0]["path"] == "weights.pt"
    (finding,) = report["findings"]
    assert finding["rule_id"] == "MLS-GEN-010"
    assert finding["failure_mode"]["id"] == 9
    assert report["summary"]["by_severity"]["medium"] == 1
