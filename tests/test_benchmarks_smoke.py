"""Smoke test of the benchmark harness: a tiny W3 run prints the table and the Targets section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_w3_prints_table_and_targets(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "W3", "--scale", "0.001",
         "--workdir", str(work), "--no-peers", "--repeat", "1", "--json", str(figures)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "wall s" in out and "RSS MB" in out and "mlscan scan (10 files)" in out
    targets = out.split("\nTargets\n", 1)[1]
    assert "W3 peak RSS (mlscan)" in targets and "MET" in targets
    assert "W3 scan / picklescan" in targets and "peers disabled" in targets
    assert not any(work.iterdir()), "the workload directory should be deleted without --keep"

    data = json.loads(figures.read_text())
    (row,) = [r for r in data["rows"] if r["tool"].startswith("mlscan")]
    assert row["wall"] > 0 and row["code"] == 0 and 5 < row["rss_mb"] < 200
    assert {t["status"] for t in data["targets"]} <= {"MET", "MISSED", "SKIPPED"}
