"""Configuration: where it is found, what it may say, how the command line overrides it, and
that every report says which configuration was used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.core.finding import Severity
from scanner.core.rules import load_catalogue
from scanner.policy.apply import Policy, PolicyInputs
from scanner.policy.config import PolicyError, find_config, load_config
from tests.test_report_formats import malicious_pickle


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository with a models/ directory (one medium, one critical finding); cwd = its root."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    models = root / "models"
    models.mkdir()
    (models / "weights.pt").write_bytes(b"\x00\x01 not a model")      # MLS-GEN-010 medium
    (models / "evil.pkl").write_bytes(malicious_pickle("policy-config"))  # critical
    monkeypatch.chdir(root)
    return root


def _report(run_cli, *args):
    result = run_cli("scan", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout) if result.exit_code in (0, 1) else result.output


def test_pyproject_tool_table_is_found_from_a_subdirectory(project, run_cli, monkeypatch):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.mlscan]\nfail-on = "medium"\n'
                                           'disable = ["MLS-PKL"]\n')
    (project / "src").mkdir()
    monkeypatch.chdir(project / "src")
    code, report = _report(run_cli, "../models")
    assert report["policy"]["source"] == str(project / "pyproject.toml")
    assert report["policy"]["fail_on"] == "medium" and report["policy"]["fail_on_from"] == "config"
    assert not [f for f in report["findings"] if f["rule_id"].startswith("MLS-PKL")]
    assert report["policy"]["counts"]["disabled"] >= 1
    assert code == 1  # the medium finding now fails


def test_mlscan_toml_wins_over_pyproject_and_a_pyproject_without_table_is_skipped(project, tmp_path):
    (project / "pyproject.toml").write_text('[tool.mlscan]\nfail-on = "low"\n')
    (project / ".mlscan.toml").write_text('fail-on = "critical"\n')
    assert find_config(project) == project / ".mlscan.toml"
    sub = project / "pkg"
    sub.mkdir()
    (sub / "pyproject.toml").write_text('[project]\nname = "pkg"\n')  # no [tool.mlscan]
    assert find_config(sub) == project / ".mlscan.toml"


def test_search_stops_at_the_repository_root(tmp_path):
    (tmp_path / ".mlscan.toml").write_text('fail-on = "info"\n')   # above the repository
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert find_config(repo) is None


def test_a_config_inside_the_scanned_target_is_not_searched(project, run_cli, tmp_path, monkeypatch):
    """A downloaded model repository cannot switch rules off by shipping a config."""
    download = tmp_path / "download"
    download.mkdir()
    (download / "evil.pkl").write_bytes(malicious_pickle("policy-download"))
    (download / ".mlscan.toml").write_text('disable = ["MLS-*"]\nfail-on = "critical"\n')
    code, report = _report(run_cli, str(download))
    assert code == 1 and report["policy"]["source"] is None
    assert any(f["rule_id"].startswith("MLS-PKL") for f in report["findings"])


def test_config_in_the_working_directory_inside_the_target_is_used_with_a_notice(project, run_cli):
    (project / ".mlscan.toml").write_text('ignore = ["models/weights.pt"]\n')
    result = run_cli("scan", "--format", "json", ".")
    assert "inside the scanned tree" in result.stderr and "--no-config" in result.stderr
    report = json.loads(result.stdout)
    assert report["policy"]["counts"]["ignored"] == 1
    assert "models/weights.pt" not in [a["path"] for a in report["artifacts"]]


def test_command_line_overrides_the_file_and_no_config_ignores_it(project, run_cli):
    (project / ".mlscan.toml").write_text('fail-on = "critical"\njobs = 2\n'
                                          '[severity]\n"MLS-GEN-010" = "critical"\n')
    code, report = _report(run_cli, "--fail-on", "low", "models")
    assert report["policy"]["fail_on"] == "low" and report["policy"]["fail_on_from"] == "command line"
    assert report["policy"]["jobs"] == 2
    weights = next(f for f in report["findings"] if f["rule_id"] == "MLS-GEN-010")
    assert weights["severity"] == "critical"
    code, report = _report(run_cli, "--no-config", "models")
    assert report["policy"]["source"] is None and report["policy"]["fail_on"] == "high"
    assert next(f for f in report["findings"] if f["rule_id"] == "MLS-GEN-010")["severity"] == "medium"


def test_explicit_config_file_is_used(project, run_cli, tmp_path):
    elsewhere = tmp_path / "ci-policy.toml"
    elsewhere.write_text('[tool.mlscan]\nenable = ["MLS-GEN-010"]\n')
    code, report = _report(run_cli, "--config", str(elsewhere), "models")
    assert report["policy"]["source"] == str(elsewhere)
    assert {f["rule_id"] for f in report["findings"]} == {"MLS-GEN-010"}
    assert code == 0


@pytest.mark.parametrize("text, message", [
    ('fail_on = "hgih"\n', "unknown severity"),
    ('failon = "high"\n', "unknown setting"),
    ('disable = ["MLS-PKK-*"]\n', "matches no rule"),
    ('[severity]\n"MLS-XXX-001" = "low"\n', "unknown rule"),
    ('jobs = 0\n', "positive integer"),
    ('[[suppress]]\nrule = "MLS-GEN-010"\npath = "*.pt"\n', "reason"),
    ('[[suppress]]\nrule = "MLS-GEN-010"\npath = "*.pt"\nreason = "x"\nexpires = "soon"\n', "date"),
    ('not toml at all [', "not valid TOML"),
])
def test_a_bad_config_is_a_usage_error(project, run_cli, text, message):
    (project / ".mlscan.toml").write_text(text)
    result = run_cli("scan", "models")
    assert result.exit_code == 2
    assert message in result.output


def test_config_and_no_config_exclude_each_other(project, run_cli):
    (project / ".mlscan.toml").write_text("")
    assert run_cli("scan", "--config", ".mlscan.toml", "--no-config", "models").exit_code == 2


def test_paths_in_the_config_are_relative_to_the_config_file(project):
    (project / "ci").mkdir()
    path = project / "ci" / ".mlscan.toml"
    path.write_text('baseline = "base.json"\nregistry = "../reg.db"\nrequired-keys = ["k.pub"]\n')
    config = load_config(path)
    assert config.baseline == project / "ci" / "base.json"
    assert config.registry == project / "reg.db"
    assert config.required_keys == (project / "ci" / "k.pub",)


def test_policy_load_records_where_each_setting_came_from(project):
    (project / ".mlscan.toml").write_text('fail-on = "medium"\n')
    rules = load_catalogue()
    policy = Policy.load(PolicyInputs(jobs=3), rules, cwd=project)
    assert policy.fail_on is Severity.MEDIUM and policy.origins["fail_on"] == "config"
    assert policy.jobs == 3 and policy.origins["jobs"] == "command line"
    with pytest.raises(PolicyError):
        Policy.load(PolicyInputs(config=Path(project / "missing.toml")), rules)


def test_text_report_names_the_configuration(project, run_cli):
    (project / ".mlscan.toml").write_text('ignore = ["models/weights.pt"]\n')
    result = run_cli("scan", "models")
    assert f"Config: {project / '.mlscan.toml'}" in result.stdout
    assert "1 ignored" in result.stdout
