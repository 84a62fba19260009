"""Measuring child processes: wall time, CPU time and peak RSS, best of a few runs.

Every figure comes from the kernel's accounting of the child (``os.wait4``), so the harness's
own memory and CPU never leak into a tool's numbers. ``ru_maxrss`` is the peak resident set of
the largest single process in the child's tree (the child or a worker it reaped), not the sum,
and never below the launcher's own floor of a few MB (see ``_LAUNCHER``).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One execution of a command."""

    wall: float          # seconds
    cpu: float           # user + sys seconds of the child and the descendants it reaped
    rss_kib: int         # peak RSS of the largest process in the tree, KiB
    code: int            # exit status (negative: killed by that signal)
    timed_out: bool = False
    stderr_tail: str = ""


@dataclass
class Measurement:
    """The best (minimum wall time) of several runs of one command."""

    label: str
    cmd: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.wall)

    @property
    def wall(self) -> float:
        return self.best.wall

    @property
    def cpu(self) -> float:
        return self.best.cpu

    @property
    def rss_mb(self) -> float:
        # The worst run counts for memory: a target on peak memory is about every run.
        return max(r.rss_kib for r in self.runs) / 1024

    @property
    def code(self) -> int:
        return self.best.code

    @property
    def failed(self) -> bool:
        return any(r.timed_out for r in self.runs)


# The launcher: a bare interpreter that forks, execs and reaps each command. Children are not
# forked from this harness because Linux carries the forking process's RSS high-water mark into
# the child's ru_maxrss across exec; from this launcher the floor is its own few MB, not the
# harness's (which holds a 16 MiB data block and whatever the builders imported).
_LAUNCHER = r"""
import json, os, sys, time
for line in sys.stdin:
    req = json.loads(line)
    err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err, 2)
            os.execvpe(req["cmd"][0], req["cmd"], req["env"])
        except BaseException as exc:
            os.write(2, ("cannot run: %r\n" % (exc,)).encode())
        os._exit(127)
    os.close(err)
    print(json.dumps({"pid": pid}), flush=True)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss,
                      "code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class _Launcher:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def run(self, cmd: Sequence[str], env: Mapping[str, str], timeout: float) -> Run:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with tempfile.NamedTemporaryFile(prefix="mlscan-bench-err-") as err:
            self.proc.stdin.write(json.dumps({"cmd": list(cmd), "env": dict(env), "err": err.name}) + "\n")
            self.proc.stdin.flush()
            pid = json.loads(self.proc.stdout.readline())["pid"]
            expired = threading.Event()

            def _kill() -> None:
                expired.set()
                try:
                    os.killpg(pid, signal.SIGKILL)   # setsid: the tool and any workers it started
                except ProcessLookupError:
                    pass

            timer = threading.Timer(timeout, _kill)
            timer.start()
            try:
                done = json.loads(self.proc.stdout.readline())
            finally:
                timer.cancel()
            tail = Path(err.name).read_bytes()[-2000:].decode("utf-8", "replace")
        return Run(done["wall"], done["cpu"], done["rss"], done["code"], expired.is_set(), tail)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


_launcher: _Launcher | None = None


def run_once(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 300.0) -> Run:
    """Run ``cmd`` (stdout discarded, stderr kept for diagnostics) and account for it with
    ``os.wait4`` in the launcher."""
    global _launcher
    if _launcher is None:
        _launcher = _Launcher()
        atexit.register(_launcher.close)
    return _launcher.run(cmd, env if env is not None else os.environ, timeout)


@dataclass(frozen=True)
class Spec:
    """A command to measure."""

    label: str
    cmd: list[str]
    env: Mapping[str, str] | None = None
    timeout: float = 300.0


def measure(specs: Sequence[Spec], *, repeat: int = 3, budget: float = 30.0) -> list[Measurement]:
    """Run the commands in interleaved rounds (A B C, A B C, ...) so a burst of load from other
    processes hits every contender alike, up to ``repeat`` rounds. A command stops repeating once
    another run would take it past ``budget`` seconds, or after a run that timed out."""
    results = [Measurement(s.label, list(s.cmd)) for s in specs]
    for _ in range(max(1, repeat)):
        for spec, result in zip(specs, results, strict=True):
            if result.runs:
                last = result.runs[-1]
                spent = sum(r.wall for r in result.runs)
                if last.timed_out or spent + last.wall > budget:
                    continue
            result.runs.append(run_once(spec.cmd, env=spec.env, timeout=spec.timeout))
    return results


def best_of(label: str, cmd: Sequence[str], *, repeat: int = 3, budget: float = 30.0,
            env: Mapping[str, str] | None = None, timeout: float = 300.0) -> Measurement:
    """One command, best wall time of up to ``repeat`` runs."""
    return measure([Spec(label, list(cmd), env, timeout)], repeat=repeat, budget=budget)[0]


def warm(paths: Sequence[Path]) -> None:
    """Read files once so every contender starts with them in the page cache."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(16 << 20):
                pass


def hashlib_throughput(paths: Sequence[Path], chunk: int = 1 << 20) -> tuple[float, float]:
    """(seconds, MB/s) of single-core SHA-256 over ``paths`` in this process, ``chunk`` reads."""
    total = 0
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    started = time.perf_counter()
    for path in paths:
        hasher = hashlib.sha256()
        with open(path, "rb", buffering=0) as handle:
            while got := handle.readinto(buffer):
                hasher.update(view[:got])
                total += got
        hasher.hexdigest()
    elapsed = time.perf_counter() - started
    return elapsed, total / 1e6 / elapsed if elapsed > 0 else float("inf")
