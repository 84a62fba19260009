"""Suppressions, ignores, rule selection and severity overrides, applied after the scan."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from scanner import __version__
from scanner.core.finding import Severity
from scanner.core.rules import load_catalogue
from scanner.engine import Scanner
from scanner.policy.apply import Policy, PolicyInputs
from scanner.policy.paths import glob_matches
from tests.test_report_formats import malicious_pickle


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "proj"
    (root / "models" / "legacy").mkdir(parents=True)
    (root / "models" / "legacy" / "old.pkl").write_bytes(malicious_pickle("suppress-old"))
    (root / "models" / "new.pkl").write_bytes(malicious_pickle("suppress-new"))
    (root / "vendor").mkdir()
    (root / "vendor" / "op.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 40)
    return root


def _apply(tree, config_text: str, targets=None, today=dt.date(2025, 6, 1)):
    (tree / ".mlscan.toml").write_text(config_text)
    rules = load_catalogue()
    policy = Policy.load(PolicyInputs(config=tree / ".mlscan.toml"), rules)
    result = Scanner().scan([str(t) for t in (targets or [tree])])
    outcome = policy.apply(result, rules, __version__, today=today)
    return result, outcome


def _by_path(result):
    return {(f.location.path, f.rule_id) for f in result.findings}


def test_a_suppression_hides_only_its_rule_at_its_path(tree):
    result, outcome = _apply(tree, '''
[[suppress]]
rule = "MLS-GEN-007"
path = "vendor/*.so"
reason = "custom op built from reviewed source (SEC-1)"
expires = 2025-12-31
''')
    paths = _by_path(result)
    assert not any(p == "vendor/op.so" and r == "MLS-GEN-007" for p, r in paths)
    assert any(p == "models/new.pkl" for p, _ in paths)
    assert outcome.counts["suppressed"] == 1
    assert not any(r.startswith("MLS-POL") for _, r in paths)


def test_an_expired_suppression_stops_hiding_and_is_itself_reported(tree):
    result, outcome = _apply(tree, '''
[[suppress]]
rule = "MLS-GEN-007"
path = "vendor/**"
reason = "accepted until the vendor ships safetensors"
expires = 2025-01-31
''')
    rules = {f.rule_id: f for f in result.findings}
    assert "MLS-GEN-007" in rules, "an expired suppression must not hide the finding"
    expired = rules["MLS-POL-001"]
    assert expired.severity is Severity.MEDIUM
    assert "2025-01-31" in expired.evidence and "vendor/**" in expired.evidence
    assert expired.location.path == str(tree / ".mlscan.toml") and expired.location.node == "suppress[1]"
    assert outcome.counts["expired_suppressions"] == 1 and outcome.counts["suppressed"] == 0


def test_an_unused_suppression_is_reported_when_the_scan_covered_its_project(tree):
    result, outcome = _apply(tree, '''
[[suppress]]
rule = "MLS-GEN-010"
path = "models/*.pt"
reason = "was a broken checkpoint"
''')
    (unused,) = [f for f in result.findings if f.rule_id == "MLS-POL-002"]
    assert unused.severity is Severity.LOW and "MLS-GEN-010" in unused.evidence
    assert outcome.counts["unused_suppressions"] == 1


def test_a_partial_scan_does_not_call_suppressions_for_unscanned_paths_unused(tree):
    """A pre-commit run over one staged file must not nag about every other suppression."""
    result, outcome = _apply(tree, '''
[[suppress]]
rule = "MLS-GEN-007"
path = "vendor/*.so"
reason = "reviewed"
''', targets=[tree / "models" / "new.pkl"])
    assert not [f for f in result.findings if f.rule_id.startswith("MLS-POL")]
    result, outcome = _apply(tree, '''
[[suppress]]
rule = "MLS-GEN-007"
path = "vendor/*.so"
reason = "reviewed"
''', targets=[tree / "vendor" / "op.so"])
    assert outcome.counts["suppressed"] == 1


def test_ignore_rules_and_severity_overrides(tree):
    result, outcome = _apply(tree, '''
ignore = ["models/legacy"]
disable = ["MLS-GEN-007"]
[severity]
"MLS-PKL-001" = "low"
''')
    paths = {p for p, _ in _by_path(result)}
    assert not any(p.startswith("models/legacy") for p in paths)
    assert not any(a.location.startswith("models/legacy") for a in result.artifacts)
    assert "MLS-GEN-007" not in {r for _, r in _by_path(result)}
    assert all(f.severity is Severity.LOW for f in result.findings if f.rule_id == "MLS-PKL-001")
    assert outcome.counts["ignored"] >= 1 and outcome.counts["disabled"] == 1
    assert outcome.counts["severity_overridden"] >= 1
    assert "MLS-PKL-001" not in {f.rule_id for f in result.failing(Severity.MEDIUM)}


def test_enable_is_an_allowlist_of_rule_patterns(tree):
    result, _ = _apply(tree, 'enable = ["MLS-GEN"]\n')
    assert result.findings and all(f.rule_id.startswith("MLS-GEN-") for f in result.findings)


def test_suppression_globs_reach_archive_members_only_when_they_name_the_archive():
    assert glob_matches("models/*.pkl", "models/a.pkl")
    assert not glob_matches("models/*.pkl", "models/sub/a.pkl")
    assert glob_matches("models/**/*.pkl", "models/sub/a.pkl")
    assert glob_matches("models/**", "models/sub/a.pkl")
    assert glob_matches("models", "models/sub/a.pkl")
    assert glob_matches("*.pkl", "deep/dir/a.pkl")                 # bare name matches anywhere
    assert not glob_matches("*.pkl", "model.pt", ("archive/data.pkl",))  # not members
    assert glob_matches("model.pt!**", "model.pt", ("archive/data.pkl",))
    assert glob_matches("model.pt", "model.pt", ("archive/data.pkl",))  # the file and all inside
    assert not glob_matches("", "model.pt")


def test_suppressions_and_counts_appear_in_the_report(tree, run_cli, monkeypatch):
    (tree / ".git").mkdir()
    (tree / ".mlscan.toml").write_text('''
[[suppress]]
rule = "MLS-GEN-007"
path = "vendor/op.so"
reason = "reviewed in SEC-7"
expires = 2999-01-01
''')
    monkeypatch.chdir(tree)
    result = run_cli("scan", "--format", "json", "models", "vendor")
    report = json.loads(result.stdout)
    assert report["policy"]["suppressions"] == [
        {"rule": "MLS-GEN-007", "path": "vendor/op.so", "reason": "reviewed in SEC-7", "expires": "2999-01-01"}]
    assert report["policy"]["counts"]["suppressed"] == 1
    assert "MLS-GEN-007" not in {f["rule_id"] for f in report["findings"]}
