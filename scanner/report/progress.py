"""A progress bar on stderr for long scans, fed by ``Scanner.scan(progress=...)``.

Only on a terminal (a CI log or a redirected stderr gets nothing), only after the scan has run
for a moment (short scans never flash a bar), redrawn at most ten times a second, and erased
when the scan ends so the report starts on a clean line.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

WIDTH = 24


class ProgressBar:
    """``with progress_bar(quiet) as progress: scanner.scan(targets, progress=progress)``;
    ``progress`` is ``None`` when no bar should be drawn."""

    def __init__(self, stream: TextIO, delay: float = 0.5, interval: float = 0.1,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.stream = stream
        self.delay = delay
        self.interval = interval
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = 0  # characters on the line now

    def __call__(self, done: int, total: int, name: str) -> None:
        now = time.monotonic()
        if done < total and (now - self.started < self.delay or now - self.last_draw < self.interval):
            return
        if done >= total and not self.drawn:
            return  # finished before the bar was ever worth showing
        self.last_draw = now
        filled = WIDTH * done // max(total, 1)
        columns = _columns(self.stream)
        head = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} "
        room = max(0, columns - len(head) - 1)
        tail = name if len(name) <= room else "…" + name[-(room - 1):] if room > 1 else ""
        tail = "".join(c if c.isprintable() else "?" for c in tail)
        line = head + tail
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(line)

    def __enter__(self) -> ProgressBar | None:
        self.started = time.monotonic()
        return self if self.enabled else None

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


def progress_bar(quiet: bool = False, stream: TextIO | None = None) -> ProgressBar:
    """A bar for ``stream`` (stderr by default), enabled when it is a terminal and not
    ``--quiet``."""
    stream = stream if stream is not None else sys.stderr
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    enabled = not quiet and interactive and os.environ.get("TERM") != "dumb"
    return ProgressBar(stream, enabled=enabled)
