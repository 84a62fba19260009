"""Fingerprints are stable (rescan, other working directory, moved tree, shifted offsets) and
distinct; baselines record them and hide only what they recorded."""

from __future__ import annotations

import json
import pickle
import shutil

from scanner.core.finding import Location
from scanner.core.rules import load_catalogue
from scanner.policy.fingerprint import evidence_key, fingerprint_findings
from scanner.policy.paths import ScanRoots
from tests.test_report_formats import _Payload, build_severity_tree, malicious_pickle


def _fingerprints(run_cli, *args: str) -> list[tuple[str, str, str]]:
    result = run_cli("scan", "--no-config", "--format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    return sorted((f["rule_id"], f["location"]["path"].rsplit("/", 1)[-1], f["fingerprint"])
                  for f in report["findings"])


def test_fingerprints_are_stable_across_runs_working_directories_and_locations(
        run_cli, tmp_path, monkeypatch):
    tree = build_severity_tree(tmp_path / "a" / "tree")
    monkeypatch.chdir(tmp_path)
    first = _fingerprints(run_cli, "a/tree")
    assert first == _fingerprints(run_cli, "a/tree")                 # same tree twice
    monkeypatch.chdir(tree / "models")
    assert first == _fingerprints(run_cli, "..")                     # another working directory
    assert first == _fingerprints(run_cli, str(tree))                # absolute path
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tree, moved)
    assert first == _fingerprints(run_cli, str(moved))               # the tree checked out elsewhere
    assert len({fp for _, _, fp in first}) == len(first)             # and all distinct


def test_a_single_file_target_has_the_same_fingerprint_from_anywhere(run_cli, tmp_path, monkeypatch):
    model = tmp_path / "x" / "evil.pkl"
    model.parent.mkdir()
    model.write_bytes(malicious_pickle("fp-single"))
    monkeypatch.chdir(tmp_path)
    relative = _fingerprints(run_cli, "x/evil.pkl")
    monkeypatch.chdir(model.parent)
    assert relative == _fingerprints(run_cli, "evil.pkl") == _fingerprints(run_cli, str(model))


def _padded(pad: int) -> bytes:
    """The same payload after a different amount of dead data: offsets move, meaning does not."""
    body = pickle.dumps(_Payload("fp-shift"), protocol=2)
    filler = b"x" * pad
    return body[:2] + b"X" + len(filler).to_bytes(4, "little") + filler + b"0" + body[2:]


def test_shifted_offsets_keep_the_fingerprint_a_different_payload_changes_it(run_cli, tmp_path):
    for name, data in (("one", _padded(5)), ("two", _padded(700)), ("three", malicious_pickle("other"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.pkl").write_bytes(data)
    one = _fingerprints(run_cli, str(tmp_path / "one"))
    two = _fingerprints(run_cli, str(tmp_path / "two"))
    three = _fingerprints(run_cli, str(tmp_path / "three"))
    assert one and one == two
    assert {fp for *_, fp in one} != {fp for *_, fp in three}


def test_identical_findings_get_distinct_ordinal_fingerprints(tmp_path):
    rules = load_catalogue()
    same = [rules.finding("MLS-GEN-007", Location("a.so").at(offset=off), f"blob at byte {off}")
            for off in (10, 20)]
    roots = ScanRoots([str(tmp_path)])
    fps = fingerprint_findings(same, roots)
    assert len(set(fps)) == 2
    assert fingerprint_findings(same, roots) == fps
    other = [rules.finding("MLS-GEN-007", Location("b.so").at(offset=10), "blob at byte 10")]
    assert fingerprint_findings(other, roots)[0] not in fps


def test_evidence_key_drops_what_moves_and_keeps_what_means(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    absolute, relative = ScanRoots([str(tmp_path / "models")]), ScanRoots(["models"])
    expected = evidence_key("cannot open sub/x.pkl: denied", absolute)
    assert evidence_key(f"cannot open {tmp_path}/models/sub/x.pkl: denied", absolute) == expected
    assert evidence_key("cannot open models/sub/x.pkl: denied", relative) == expected
    roots = relative
    assert evidence_key("digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 "
                        "at byte 1234") == "digest <hex> at byte <n>"
    assert evidence_key("os.system('rm')") != evidence_key("os.system('ls')")
    assert evidence_key("transformers.models.bert", roots) == "transformers.models.bert"


def test_write_baseline_then_baseline_reports_only_new_findings(run_cli, tmp_path, monkeypatch):
    tree = build_severity_tree(tmp_path / "tree")
    monkeypatch.chdir(tmp_path)
    baseline = tmp_path / "baseline.json"
    written = run_cli("scan", "--no-config", "--write-baseline", baseline, "tree")
    assert written.exit_code == 1  # the verdict is about the files, baseline or not
    assert "wrote" in written.stderr and baseline.exists()
    document = json.loads(baseline.read_text())
    assert document["mlscan_baseline"] == 1 and document["findings"]
    assert {"fingerprint", "rule_id", "location", "severity", "title"} <= set(document["findings"][0])

    quiet = run_cli("scan", "--no-config", "--format", "json", "--baseline", baseline, "tree")
    assert quiet.exit_code == 0
    report = json.loads(quiet.stdout)
    assert report["findings"] == []
    assert report["policy"]["counts"]["baselined"] == len(document["findings"])
    assert report["policy"]["baseline"] == str(baseline)

    (tree / "models" / "fresh.pkl").write_bytes(malicious_pickle("baseline-new"))
    new = run_cli("scan", "--no-config", "--format", "json", "--baseline", baseline, "tree")
    assert new.exit_code == 1
    paths = {f["location"]["path"] for f in json.loads(new.stdout)["findings"]}
    assert paths == {"models/fresh.pkl"}


def test_rewriting_an_unchanged_baseline_is_byte_identical(run_cli, tmp_path):
    tree = build_severity_tree(tmp_path / "tree")
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    run_cli("scan", "--no-config", "-q", "--write-baseline", one, tree)
    run_cli("scan", "--no-config", "-q", "--write-baseline", two, tree)
    assert one.read_bytes() == two.read_bytes()


def test_baseline_from_the_config_file_and_bad_baselines(run_cli, tmp_path, monkeypatch):
    build_severity_tree(tmp_path / "tree")
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    run_cli("scan", "--no-config", "-q", "--write-baseline", "base.json", "tree")
    (tmp_path / ".mlscan.toml").write_text('baseline = "base.json"\n')
    result = run_cli("scan", "--format", "json", "tree")
    assert result.exit_code == 0 and json.loads(result.stdout)["findings"] == []
    for content in ("not json", '{"findings": []}', '{"mlscan_baseline": 1, "fingerprint_version": "v0"}'):
        (tmp_path / "bad.json").write_text(content)
        bad = run_cli("scan", "--no-config", "--baseline", "bad.json", "tree")
        assert bad.exit_code == 2, content
    assert run_cli("scan", "--no-config", "--baseline", "missing.json", "tree").exit_code == 2


def test_an_unwritable_baseline_is_a_usage_error(run_cli, tmp_path):
    tree = build_severity_tree(tmp_path / "tree")
    result = run_cli("scan", "--no-config", "--write-baseline", tmp_path / "no" / "such" / "b.json", tree)
    assert result.exit_code == 2 and "cannot write the baseline" in result.output
