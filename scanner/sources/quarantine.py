"""Quarantine: where downloads wait until they are verified and scanned.

The quarantine is a private (0700) directory *beside* the destination, not inside it: a loader
that globs ``--dest`` recursively must never see a half-downloaded or unverified file, and being
on the same filesystem makes promotion an atomic ``os.replace`` per file (a reader sees the old
file or the complete new one, never a partial write). Promotion happens only after every file
passed; every destination is checked before the first rename, so a problem found late (a
symlink or a directory in the way) cannot leave half a model in ``--dest``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from scanner.sources.interface import FetchError

_DEVICE_NAMES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` (from a remote listing or URL) must not be written, or None if it is safe:
    relative, '/'-separated, no '..', no NUL or control characters, no device names."""
    if not path:
        return "empty path"
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        return "control character in the path"
    if "\\" in path:
        return "backslash in the path"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"path component {part!r}"
        if _DEVICE_NAMES.match(part):
            return f"device name {part!r}"
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            return "path component longer than 255 bytes"
    return None


class Quarantine:
    """A staging directory. ``promote`` moves files into ``dest``; ``discard`` removes it."""

    def __init__(self, root: Path, dest: Path | None) -> None:
        self.root = root
        self.dest = dest

    @classmethod
    def beside(cls, dest: Path) -> Quarantine:
        """A quarantine next to ``dest`` (which need not exist yet; it is created only when
        something is promoted)."""
        dest = Path(os.path.abspath(dest))
        if dest.exists() and not dest.is_dir():
            raise FetchError(f"--dest {dest}: exists and is not a directory")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            root = tempfile.mkdtemp(prefix=f".{dest.name or 'dest'}.mlscan-quarantine-", dir=dest.parent)
        except OSError as exc:
            raise FetchError(f"cannot create a quarantine directory in {dest.parent}: "
                             f"{exc.strerror or exc}. Choose a --dest in a writable directory.") from None
        return cls(Path(root), dest)

    @classmethod
    def temporary(cls) -> Quarantine:
        """A quarantine in the system temporary directory, for scanning without keeping."""
        return cls(Path(tempfile.mkdtemp(prefix="mlscan-remote-")), None)

    def path_for(self, rel: str) -> Path:
        """Where ``rel`` (already validated) is staged; parent directories are created."""
        path = self.root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def promote(self, rels: Sequence[str]) -> list[Path]:
        """Move every staged ``rel`` into ``dest`` (atomic per file); returns the new paths."""
        if self.dest is None:
            raise FetchError("this quarantine has no destination")
        dest = self.dest
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FetchError(f"cannot create --dest {dest}: {exc.strerror or exc}") from None
        plan = [(self.root.joinpath(*rel.split("/")), self._target(dest, rel)) for rel in rels]
        for source, target in plan:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _replace(source, target)
            except OSError as exc:
                raise FetchError(f"cannot move {source} to {target}: {exc.strerror or exc}; "
                                 "files before it were already moved into --dest") from None
        return [target for _, target in plan]

    @staticmethod
    def _target(dest: Path, rel: str) -> Path:
        """The destination of ``rel``, refusing to write through a symlink or onto a directory
        (a planted ``dest/sub -> /elsewhere`` link must not redirect the write)."""
        current = dest
        parts = rel.split("/")
        for part in parts[:-1]:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                raise FetchError(f"{current}: is a symlink or not a directory; refusing to write "
                                 f"{rel} through it. Remove it or choose another --dest.")
        target = current / parts[-1]
        if target.is_dir() and not target.is_symlink():
            raise FetchError(f"{target}: is a directory; cannot put the file {rel} there")
        return target

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _replace(source: Path, target: Path) -> None:
    """``os.replace``; across filesystems, copy beside the target first so the final rename is
    still atomic."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        source.unlink()
