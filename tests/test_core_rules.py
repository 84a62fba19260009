"""The rule catalogue is valid data and `mlscan rules` exposes all of it."""

from __future__ import annotations

import json

import pytest

from scanner.core.rules import RuleError, load_catalogue, load_rule_files


def test_shipped_rules_load_and_are_well_formed():
    catalogue = load_catalogue()
    assert len(catalogue) >= 10
    for rule_id in catalogue:
        rule = catalogue[rule_id]
        assert rule.title and rule.description and rule.remediation
        assert int(rule.failure_mode) in (9, 10, 11)


def test_duplicate_rule_ids_are_rejected(tmp_path):
    text = """[[rule]]
id = "MLS-GEN-900"
title = "t"
description = "d"
severity = "low"
failure_mode = 9
cia = ["integrity"]
remediation = "r"
"""
    (tmp_path / "a.toml").write_text(text)
    (tmp_path / "b.toml").write_text(text)
    with pytest.raises(RuleError, match="duplicate"):
        load_rule_files([tmp_path / "a.toml", tmp_path / "b.toml"])


def test_bad_severity_is_rejected(tmp_path):
    (tmp_path / "a.toml").write_text("""[[rule]]
id = "MLS-GEN-901"
title = "t"
description = "d"
severity = "catastrophic"
failure_mode = 9
cia = ["integrity"]
remediation = "r"
""")
    with pytest.raises(RuleError, match="severity"):
        load_rule_files([tmp_path / "a.toml"])


def test_rules_command_lists_and_explains(run_cli):
    listing = run_cli("rules")
    assert listing.exit_code == 0
    assert "MLS-GEN-006" in listing.output and "critical" in listing.output
    one = run_cli("rules", "mls-gen-006")
    assert "failure mode: #9 attacking the ML supply chain" in one.output
    data = json.loads(run_cli("rules", "--format", "json").output)
    assert {r["id"] for r in data} == set(load_catalogue())
    assert run_cli("rules", "MLS-XXX-999").exit_code == 2
