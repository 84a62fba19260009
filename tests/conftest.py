"""Shared test helpers: run the real CLI in-process and scan paths through the engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "fixtures" / "samples"


@pytest.fixture
def run_cli():
    """Invoke ``mlscan`` with arguments; returns the click Result."""
    from scanner.cli import main

    def _run(*args: str, input: str | None = None):  # noqa: A002
        return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return _run


@pytest.fixture
def scan_json(run_cli):
    """Scan paths and return (exit_code, parsed JSON report)."""

    def _scan(*paths: str | Path, extra: tuple[str, ...] = ()):
        result = run_cli("scan", "--format", "json", *extra, *map(str, paths))
        return result.exit_code, json.loads(result.stdout)

    return _scan


def scan_paths(*paths: str | Path):
    """Scan through the library API (no CLI); returns a ScanResult."""
    from scanner.engine import Scanner

    return Scanner().scan([str(p) for p in paths])


def rule_ids(result) -> set[str]:
    return {f.rule_id for f in result.findings}


@pytest.fixture(autouse=True)
def _isolated_user_state(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's registry and digest cache (scan consults the default
    registry when it exists)."""
    home = tmp_path_factory.mktemp("user-state")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("MLSCAN_CACHE_DIR", str(home / "cache"))
    monkeypatch.delenv("MLSCAN_REGISTRY", raising=False)
