"""A download progress bar on stderr, only when it is a terminal (never in CI logs or pipes).

Redrawn at most ten times a second and erased when a file completes, so the report that
follows starts on a clean line. File names come from remote listings: control characters are
replaced before they reach the terminal.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

WIDTH = 20


def _human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class ByteProgress:
    """``bar.start(name)``, then ``bar(done, total)`` per chunk, then ``bar.done()``."""

    def __init__(self, stream: TextIO, enabled: bool, interval: float = 0.1) -> None:
        self.stream, self.enabled, self.interval = stream, enabled, interval
        self.name = ""
        self.started = self.last = 0.0
        self.drawn = 0

    def start(self, name: str) -> None:
        self.name = "".join(c if c.isprintable() else "?" for c in name)
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        if total:
            filled = min(WIDTH, WIDTH * done // total)
            bar = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {_human(done)}/{_human(total)}"
        else:
            bar = f"{_human(done)}"
        line = f"{bar} {_human(rate)}/s {self.name}"
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 80
        line = line[: max(10, columns - 1)]
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(line)

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


def byte_progress(quiet: bool = False, stream: TextIO | None = None) -> ByteProgress:
    stream = stream if stream is not None else sys.stderr
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return ByteProgress(stream, enabled=not quiet and interactive and os.environ.get("TERM") != "dumb")
