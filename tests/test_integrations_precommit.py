"""The pre-commit hooks, run the way pre-commit runs them: staged files of a real git
repository, filtered by each hook's ``files`` regex and ``types``, appended to its ``entry``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fixtures.builders.canary import CANARY_DIR
from tests.conftest import ROOT
from tests.test_report_formats import malicious_pickle

HOOKS = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
# pre-commit's (identify's) text test: a file is text when its first KiB has only these bytes.
_TEXT = bytes({7, 8, 9, 10, 11, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F})

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _staged(repo: Path) -> list[str]:
    out = _git(repo, "diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z")
    return [name for name in out.split("\0") if name]


def _types(path: Path) -> set[str]:
    head = path.read_bytes()[:1024]
    return {"file", "text" if not head.translate(None, _TEXT) else "binary"}


def _select(hook: dict, repo: Path, files: list[str]) -> list[str]:
    include = re.compile(hook.get("files", ""))
    exclude = re.compile(hook["exclude"]) if hook.get("exclude") else None
    wanted = set(hook.get("types", ["file"]))
    return [f for f in files if include.search(f) and not (exclude and exclude.search(f))
            and wanted <= _types(repo / f)]


def _run_hook(hook_id: str, repo: Path) -> tuple[int | None, list[str], str]:
    hook = HOOKS[hook_id]
    files = _select(hook, repo, _staged(repo))
    if not files:
        return None, files, ""  # pre-commit skips a hook with no matching files
    command = [*shlex.split(hook["entry"]), *hook.get("args", []), *files]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, files, proc.stdout + proc.stderr


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "src").mkdir()
    (repo / "models" / "evil.pkl").write_bytes(malicious_pickle("precommit-evil"))
    (repo / "models" / "ok.pt").write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01K\x01s.")
    (repo / "data" / "renamed.dat").write_bytes(malicious_pickle("precommit-renamed"))
    (repo / "src" / "app.py").write_text("print('hello')\n")
    (repo / "README.md").write_text("# demo\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    return repo


def test_hook_definitions_are_complete():
    for hook in HOOKS.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python" and hook["entry"].startswith("mlscan scan")
        assert hook.get("require_serial") is True
    assert set(HOOKS) == {"mlscan", "mlscan-binaries"}


def test_model_file_hook_blocks_a_malicious_staged_model(repo):
    code, files, output = _run_hook("mlscan", repo)
    assert sorted(files) == ["models/evil.pkl", "models/ok.pt"]
    assert code == 1
    assert "MLS-PKL-001" in output and "models/evil.pkl" in output and "FAIL" in output
    assert not [line for line in output.splitlines() if "ok.pt" in line]  # -q: failing lines only


def test_binary_hook_catches_a_payload_under_any_name(repo):
    code, files, output = _run_hook("mlscan-binaries", repo)
    assert "data/renamed.dat" in files and "src/app.py" not in files and "README.md" not in files
    assert code == 1 and "renamed.dat" in output


def test_hooks_pass_when_only_clean_files_are_staged(repo):
    _git(repo, "rm", "-q", "--cached", "models/evil.pkl", "data/renamed.dat")
    for hook_id in HOOKS:
        code, files, output = _run_hook(hook_id, repo)
        assert files == ["models/ok.pt"], hook_id
        assert code == 0, output
    assert not any(CANARY_DIR.glob("precommit-*")) if CANARY_DIR.exists() else True


def test_file_pattern_covers_model_and_archive_names():
    pattern = re.compile(HOOKS["mlscan"]["files"])
    for name in ("a.pkl", "b.PT", "c.pth", "d.bin", "e.ckpt", "f.joblib", "g.npy", "h.npz", "i.onnx",
                 "j.h5", "k.keras", "saved_model.pb", "l.safetensors", "m.gguf", "n.zip", "o.tar.gz",
                 "p.7z", "q.msgpack", "r.tflite"):
        assert pattern.search(name), name
    for name in ("app.py", "README.md", "config.json", "notes.txt"):
        assert not pattern.search(name), name
