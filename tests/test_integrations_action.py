"""The GitHub Action, run locally: every ``run:`` step of action.yml executes in a temporary
workspace with the inputs set as GitHub would (``${{ inputs.* }}``, ``github.action_path``,
step outputs through ``$GITHUB_OUTPUT``), under GitHub's bash flags. ``uses:`` steps
(setup-python, upload-sarif) need GitHub and are skipped, but their conditions are checked."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_report_formats import assert_valid, build_severity_tree, sarif_validator

ACTION = ROOT / "action.yml"
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class LocalRunner:
    """Just enough of the Actions runner for a composite action's bash steps."""

    def __init__(self, workspace: Path, inputs: dict[str, str], env: dict[str, str] | None = None):
        self.action = yaml.safe_load(ACTION.read_text())
        defaults = {name: str(spec.get("default", "")) for name, spec in self.action["inputs"].items()}
        unknown = set(inputs) - set(defaults)
        assert not unknown, f"not inputs of action.yml: {unknown}"
        self.inputs = {**defaults, **inputs}
        self.workspace = workspace
        self.outputs: dict[str, dict[str, str]] = {}
        self.skipped: list[str] = []
        self.logs: list[str] = []
        self.summary = workspace / ".step-summary.md"
        self.env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                    "HOME": os.environ.get("HOME", str(workspace)), "LANG": "C.UTF-8",
                    "PYTHONPATH": str(ROOT), **(env or {})}

    def evaluate(self, expression: str) -> str:
        if expression.startswith("inputs."):
            return self.inputs[expression.removeprefix("inputs.")]
        if expression == "github.action_path":
            return str(ROOT)
        step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        if step:
            return self.outputs.get(step.group(1), {}).get(step.group(2), "")
        raise AssertionError(f"action.yml uses an expression this test cannot evaluate: {expression}")

    def substitute(self, text: object) -> str:
        return _EXPR.sub(lambda m: self.evaluate(m.group(1)), str(text))

    def condition(self, step: dict) -> bool:
        """The ``if:`` of a skipped ``uses:`` step, for the forms action.yml uses."""
        text = str(step.get("if", "true")).replace("always() && ", "")
        clauses = [c.strip() for c in text.split("&&")]
        for clause in clauses:
            left, op, right = re.fullmatch(r"(\S+)\s*(==|!=)\s*'(.*)'", clause).groups()
            value = self.evaluate(left)
            if (value == right) != (op == "=="):
                return False
        return True

    def run(self) -> int:
        """Run the steps in order; returns the exit code of the first failing step (or 0)."""
        for number, step in enumerate(self.action["runs"]["steps"]):
            if "uses" in step:
                self.skipped.append(f"{step['uses']} (would run: {self.condition(step)})")
                continue
            assert step.get("shell") == "bash" and "if" not in step, step.get("name")
            output = self.workspace / f".output-{number}"
            output.write_text("")
            env = {**self.env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(self.summary),
                   "GITHUB_ACTION_PATH": str(ROOT), "GITHUB_WORKSPACE": str(self.workspace),
                   **{k: self.substitute(v) for k, v in (step.get("env") or {}).items()}}
            script = self.workspace / f".step-{number}.sh"
            script.write_text(str(step["run"]))
            cwd = self.workspace / self.substitute(step.get("working-directory", "."))
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                                  cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
            self.logs.append(proc.stdout + proc.stderr)
            if "id" in step:
                pairs = (line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
                self.outputs[step["id"]] = dict(pairs)
            if proc.returncode != 0:
                return proc.returncode
        return 0

    @property
    def log(self) -> str:
        return "\n".join(self.logs)


@pytest.fixture
def workspace(tmp_path):
    build_severity_tree(tmp_path / "models")
    (tmp_path / "models" / ".mlscan.toml").unlink()
    return tmp_path


def test_action_scans_annotates_writes_sarif_and_fails_the_job(workspace):
    runner = LocalRunner(workspace, {"path": "models", "install": "none"})
    assert runner.run() == 1, runner.log
    assert runner.outputs["scan"]["exit-code"] == "1"
    sarif_path = Path(runner.outputs["scan"]["sarif-file"])
    assert sarif_path == workspace / "mlscan.sarif"
    sarif = json.loads(sarif_path.read_text())
    assert_valid(sarif_validator(), sarif)
    assert sarif["runs"][0]["invocations"][0]["exitCode"] == 1
    assert "::error file=models/models/evil.pkl,title=mlscan MLS-PKL-001::" in runner.log
    assert "::warning file=models/weights.pt" in runner.log
    assert runner.summary.read_text().startswith("## mlscan: FAIL")
    assert "findings at or above the fail-on severity" in runner.log
    assert runner.skipped == ["actions/setup-python@v5 (would run: True)",
                              "github/codeql-action/upload-sarif@v3 (would run: True)"]


def test_action_reports_without_failing_when_asked(workspace):
    runner = LocalRunner(workspace, {"path": "models", "install": "none", "fail": "false",
                                     "upload-sarif": "false", "sarif-file": "out/report.sarif"})
    (workspace / "out").mkdir()
    assert runner.run() == 0, runner.log
    assert runner.outputs["scan"]["exit-code"] == "1"
    assert (workspace / "out" / "report.sarif").is_file()
    assert "upload-sarif@v3 (would run: False)" in runner.skipped[1]


def test_action_passes_a_clean_tree_and_honours_inputs(workspace):
    clean = workspace / "clean"
    clean.mkdir()
    (clean / "notes.md").write_text("just text\n")
    (workspace / "policy.toml").write_text('fail-on = "info"\n')
    runner = LocalRunner(workspace, {"path": "clean", "install": "none", "config": "policy.toml",
                                     "args": "--jobs 2"})
    assert runner.run() == 0, runner.log
    assert runner.outputs["scan"]["exit-code"] == "0"
    sarif = json.loads((workspace / "mlscan.sarif").read_text())
    assert sarif["runs"][0]["properties"]["failOn"] == "info"
    assert sarif["runs"][0]["properties"]["policy"]["source"] == str(workspace / "policy.toml")
    assert runner.summary.read_text().startswith("## mlscan: PASS")


def test_action_stops_on_a_usage_error_and_does_not_upload(workspace):
    runner = LocalRunner(workspace, {"path": "models", "install": "none", "fail-on": "bogus"})
    assert runner.run() == 2
    assert runner.outputs["scan"]["exit-code"] == "2"
    assert "sarif-file" not in runner.outputs["scan"]
    assert "could not complete the scan" in runner.log


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                    reason="the install step's pip dry run builds metadata with the local setuptools")
def test_action_install_step_installs_mlscan_from_the_action_checkout(workspace):
    """pip resolves the action's own checkout (dry run, offline: this venv must not change)."""
    runner = LocalRunner(workspace, {"path": "models", "upload-sarif": "false", "fail": "false"},
                         env={"PIP_DRY_RUN": "1", "PIP_NO_DEPS": "1", "PIP_NO_INDEX": "1",
                              "PIP_NO_BUILD_ISOLATION": "0"})
    assert runner.run() == 0, runner.log
    assert re.search(r"Would install mlscan-\S+", runner.log), runner.log
