"""The console entry point: the --version fast path says what click would, and never imports
the CLI package (that is what makes it fast)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_version_fast_path_matches_click_and_skips_the_cli(run_cli) -> None:
    fast = subprocess.run([sys.executable, "-X", "importtime", "-m", "scanner", "--version"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert fast.stdout == run_cli("--version").output
    imported = {line.rsplit("|", 1)[-1].strip() for line in fast.stderr.splitlines()}
    assert "click" not in imported and "scanner.cli" not in imported


def test_other_arguments_reach_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "scanner", "rules"], capture_output=True,
                            text=True, cwd=ROOT, check=False)
    assert result.returncode == 0 and "MLS-PKL-001" in result.stdout
