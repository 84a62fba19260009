"""Peer scanners (picklescan, modelscan, ModelAudit) in a cached virtualenv of their own.

They live outside mlscan's environment so their dependencies never touch ours, and never with
torch: a peer whose install would pull torch is installed with ``--no-deps`` plus its other
dependencies, and skipped (with the reason) if that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlscan-bench" / "peers-venv"
HEAVY = frozenset({"torch", "triton", "tensorflow", "tensorflow-cpu", "jax", "jaxlib"})


@dataclass(frozen=True)
class Peer:
    name: str           # PyPI distribution
    script: str         # console script
    args: tuple[str, ...]  # arguments before the path

    def command(self, script_path: str, target: Path) -> list[str]:
        return [script_path, *self.args, str(target)]


PEERS = (
    Peer("picklescan", "picklescan", ("--path",)),
    Peer("modelscan", "modelscan", ("scan", "-p")),
    # --no-cache: ModelAudit caches verdicts by file; a benchmark must scan every time.
    Peer("modelaudit", "modelaudit", ("scan", "--no-cache")),
)

# Keep peers offline and quiet: no telemetry, no hub look-ups, no colour codes.
PEER_ENV = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "TERM": "dumb"}


def peer_env() -> dict[str, str]:
    return {**os.environ, **PEER_ENV}


def _bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def find(peer: Peer) -> str | None:
    """The peer's console script: the cached venv first, then this environment, then PATH."""
    for candidate in (_bin(VENV) / peer.script, Path(sys.executable).parent / peer.script):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(peer.script)


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_bin(venv) / "python"), "-m", "pip", "--disable-pip-version-check",
                           *args], capture_output=True, text=True, check=False)


def _planned(venv: Path, name: str) -> list[str] | None:
    """Distributions ``pip install name`` would install (dry run), or None if pip cannot say."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = _pip(venv, "install", "--quiet", "--dry-run", "--report", str(report), name)
        if done.returncode != 0 or not report.exists():
            return None
        data = json.loads(report.read_text())
    return [item["metadata"]["name"].lower() for item in data.get("install", [])]


def install(log: Callable[[str], None] = print) -> dict[str, str]:
    """Create the peers venv once and install every peer missing from it.
    Returns {peer: reason} for peers that could not be installed."""
    skipped: dict[str, str] = {}
    if not (_bin(VENV) / "python").exists():
        log(f"creating peers venv at {VENV} ...")
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for peer in PEERS:
        if (_bin(VENV) / peer.script).exists():
            continue
        log(f"installing {peer.name} into {VENV} ...")
        planned = _planned(VENV, peer.name)
        if planned is None:
            skipped[peer.name] = "pip could not resolve it (offline?)"
            continue
        heavy = sorted(set(planned) & HEAVY)
        if not heavy:
            done = _pip(VENV, "install", "--quiet", peer.name)
        else:
            # Never torch in the peers venv: the peer alone, then its light dependencies.
            light = [n for n in planned if n not in HEAVY and not n.startswith("nvidia-") and n != peer.name]
            done = _pip(VENV, "install", "--quiet", "--no-deps", peer.name)
            if done.returncode == 0 and light:
                done = _pip(VENV, "install", "--quiet", *light)
            log(f"  {peer.name} wants {', '.join(heavy)}: installed with --no-deps plus {len(light)} light deps")
        if done.returncode != 0:
            skipped[peer.name] = f"pip install failed: {done.stderr.strip().splitlines()[-1:]}"
    return skipped
