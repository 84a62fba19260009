"""The human report and terminal behaviour: -q / -v / -vv, colour only on a terminal with
NO_COLOR honoured, hostile names neutralised, and the progress bar."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from scanner.engine import Scanner, ScanOptions
from scanner.report.progress import ProgressBar, progress_bar
from tests.test_report_formats import build_severity_tree, malicious_pickle

MLSCAN = [sys.executable, "-m", "scanner"]


def test_quiet_prints_only_failing_findings_and_the_verdict(run_cli, tmp_path):
    tree = build_severity_tree(tmp_path / "tree")
    out = run_cli("scan", "--no-config", "-q", tree).stdout.splitlines()
    assert out[-1].startswith("FAIL: ")
    assert all(line.split()[0] in ("CRITICAL", "HIGH") for line in out[:-1])
    assert any("MLS-PKL-001" in line for line in out) and not any("MLS-GEN-010" in line for line in out)
    assert not any("evidence" in line for line in out)


def test_default_hides_info_and_verbose_shows_it_with_artifacts(run_cli, tmp_path):
    tree = build_severity_tree(tmp_path / "tree")
    default = run_cli("scan", "--no-config", tree).stdout
    assert "MLS-GEN-010" in default and "MLS-GEN-009" not in default and "Artifacts:" not in default
    verbose = run_cli("scan", "--no-config", "-v", tree).stdout
    assert "MLS-GEN-009" in verbose and "Artifacts:" in verbose
    assert "sha256:" in verbose
    very = run_cli("scan", "--config", tree / ".mlscan.toml", "-vv", tree).stdout
    full_digests = [w for w in very.split() if w.startswith("sha256:") and len(w) == 7 + 64]
    assert full_digests and "suppress MLS-GEN-007 vendor/*.so until forever" in very


def _run_on_pty(args: list[str], env: dict[str, str]) -> str:
    """Run with stdout and stderr on a pseudo-terminal; return everything it wrote."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(args, stdout=secondary, stderr=secondary, env=env, close_fds=True)
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([primary], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path):
    tree = build_severity_tree(tmp_path / "tree")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    args = [*MLSCAN, "scan", "--no-config", str(tree)]
    assert "\x1b[" in _run_on_pty(args, env)
    assert "\x1b[" not in _run_on_pty(args, {**env, "NO_COLOR": "1"})
    piped = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 1 and "\x1b[" not in piped.stdout + piped.stderr


def test_terminal_escapes_in_names_and_evidence_are_neutralised(run_cli, tmp_path):
    (tmp_path / "evil\x1b[2J.pkl").write_bytes(malicious_pickle("text-escape"))
    out = run_cli("scan", "--no-config", tmp_path).stdout
    assert "\x1b" not in out and "evil\\x1b[2J.pkl" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_and_erases_itself():
    stream = _Terminal()
    with ProgressBar(stream, delay=0, interval=0) as progress:
        assert progress is not None
        for done in range(1, 4):
            progress(done, 3, f"dir/file{done}.pkl")
    text = stream.getvalue()
    assert "[" in text and "3/3" in text and "dir/file3.pkl" in text
    assert text.endswith("\r") and text.rstrip("\r").split("\r")[-1].strip() == ""


def test_progress_bar_stays_silent_when_quiet_not_a_terminal_or_short():
    with progress_bar(quiet=True, stream=_Terminal()) as progress:
        assert progress is None
    with progress_bar(stream=io.StringIO()) as progress:
        assert progress is None
    stream = _Terminal()
    with ProgressBar(stream, delay=60) as progress:
        assert progress is not None
        progress(1, 2, "a")
        progress(2, 2, "b")
    assert stream.getvalue() == ""  # finished before the delay: no flash of a bar


def _recorder(calls: list[tuple[int, int, str]]):
    return lambda done, total, name: calls.append((done, total, name))


def test_engine_reports_progress_per_file_in_order(tmp_path):
    for i in range(5):
        (tmp_path / f"f{i}.bin").write_bytes(os.urandom(64))
    for jobs in (1, 2):
        calls: list[tuple[int, int, str]] = []
        result = Scanner(ScanOptions(jobs=jobs)).scan([tmp_path], progress=_recorder(calls))
        assert [c[0] for c in calls] == [1, 2, 3, 4, 5] and {c[1] for c in calls} == {5}
        assert sorted(c[2] for c in calls) == [f"f{i}.bin" for i in range(5)]
        assert result == Scanner(ScanOptions(jobs=jobs)).scan([tmp_path])  # default: unchanged
