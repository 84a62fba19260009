"""The CI snippets in the README work as printed: the plain shell step and the GitLab job's
script run against a real tree, the GitHub workflow only uses inputs action.yml has, and the
configuration example loads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from scanner.core.rules import load_catalogue
from scanner.policy.config import load_config
from tests.conftest import ROOT
from tests.test_report_formats import assert_valid, build_severity_tree, sarif_validator

DOC = (ROOT / "README.md").read_text()


def snippet(heading: str, language: str) -> str:
    """The first ```language block after the '### heading' line."""
    section = DOC.split(f"### {heading}\n", 1)[1]
    match = re.search(rf"```{language}\n(.*?)\n```", section, re.S)
    assert match, f"no {language} block under {heading}"
    return match.group(1)


def _shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def workspace(tmp_path):
    build_severity_tree(tmp_path / "models")
    (tmp_path / "models" / ".mlscan.toml").unlink()
    return tmp_path


def test_plain_shell_step_fails_on_findings_and_passes_clean_trees(workspace, tmp_path):
    script = snippet("Plain shell", "sh")
    proc = _shell(script, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "unsafe model files" in proc.stderr
    assert_valid(sarif_validator(), json.loads((workspace / "mlscan.sarif").read_text()))
    clean = tmp_path / "clean"
    (clean / "models").mkdir(parents=True)
    (clean / "models" / "README.md").write_text("no models yet\n")
    assert _shell(script, clean).returncode == 0


def test_gitlab_job_script_produces_the_junit_report_it_declares(workspace):
    job = yaml.safe_load(snippet("GitLab CI", "yaml"))["mlscan"]
    commands = [c for c in job["script"] if not c.startswith("pip install")]  # mlscan is installed
    proc = _shell("\n".join(["set -e", *commands]), workspace)
    assert proc.returncode == 1  # the job fails on findings...
    report = workspace / job["artifacts"]["reports"]["junit"]
    root = ET.parse(report).getroot()  # ...and the report it uploads exists and parses
    assert int(root.get("failures")) >= 1
    assert job["artifacts"]["when"] == "always"


def test_github_workflow_uses_only_real_action_inputs():
    workflow = yaml.safe_load(snippet("GitHub Actions", "yaml"))
    action_inputs = set(yaml.safe_load((ROOT / "action.yml").read_text())["inputs"])
    steps = workflow["jobs"]["mlscan"]["steps"]
    (step,) = [s for s in steps if "/mlscan@" in s.get("uses", "")]
    assert set(step["with"]) <= action_inputs
    assert workflow["permissions"]["security-events"] == "write"


def test_precommit_snippet_names_real_hooks():
    config = yaml.safe_load(snippet("pre-commit", "yaml"))
    hooks = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert {h["id"] for r in config["repos"] for h in r["hooks"]} <= hooks


def test_configuration_example_is_valid(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(snippet("Configuration", "toml"))
    config = load_config(path)
    config.validate(load_catalogue())
    assert config.suppressions and config.suppressions[0].reason
