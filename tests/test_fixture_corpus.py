"""The committed sample corpus: every malicious sample is caught at high+ with the expected
failure mode, no benign sample has a high+ finding, and scanning never runs a payload."""

from __future__ import annotations

import shutil

import pytest

from fixtures.builders.canary import CANARY_DIR
from scanner.core.finding import Severity
from scanner.core.tomlcompat import load_toml
from tests.conftest import ROOT, SAMPLES, scan_paths

EXPECT_DIR = ROOT / "fixtures" / "expect"


def _entries() -> list[dict]:
    entries: list[dict] = []
    for path in sorted(EXPECT_DIR.glob("*.toml")):
        for entry in load_toml(path).get("sample", []):
            entries.append({**entry, "_file": path.name})
    return entries


ENTRIES = _entries()
MALICIOUS = [e for e in ENTRIES if e["verdict"] == "malicious"]
BENIGN = [e for e in ENTRIES if e["verdict"] == "benign"]


def test_every_committed_sample_has_an_expectation():
    listed = {e["path"] for e in ENTRIES}
    on_disk = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*")
               if p.is_file() and p.parts[len(SAMPLES.parts)] in ("benign", "malicious")
               and len(p.relative_to(SAMPLES).parts) == 3}
    assert on_disk - listed == set(), "samples without an entry in fixtures/expect/*.toml"
    assert listed - on_disk == set(), "expectations for samples that do not exist"


@pytest.mark.parametrize("entry", MALICIOUS, ids=lambda e: e["path"])
def test_malicious_sample_is_caught(entry):
    result = scan_paths(SAMPLES / entry["path"])
    serious = [f for f in result.findings if f.severity >= Severity.HIGH]
    assert serious, f"no high+ finding for {entry['path']}: {[f.rule_id for f in result.findings]}"
    modes = {int(f.failure_mode) for f in serious}
    assert entry["failure_mode"] in modes, f"expected failure mode #{entry['failure_mode']}, got {modes}"
    found = {f.rule_id for f in result.findings}
    missing = set(entry.get("rules", [])) - found
    assert not missing, f"expected rules {missing} not reported; got {sorted(found)}"


@pytest.mark.parametrize("entry", BENIGN, ids=lambda e: e["path"])
def test_benign_sample_is_clean(entry):
    result = scan_paths(SAMPLES / entry["path"])
    serious = [(f.rule_id, f.evidence[:200]) for f in result.findings if f.severity >= Severity.HIGH]
    assert serious == [], f"false positive on {entry['path']}"


def test_scanning_every_malicious_sample_never_runs_a_payload():
    if CANARY_DIR.exists():
        shutil.rmtree(CANARY_DIR)
    CANARY_DIR.mkdir()
    try:
        scan_paths(*(SAMPLES / e["path"] for e in MALICIOUS))
        assert list(CANARY_DIR.iterdir()) == [], "a payload ran during the scan"
    finally:
        shutil.rmtree(CANARY_DIR, ignore_errors=True)
    assert MALICIOUS, "the corpus has malicious samples"
