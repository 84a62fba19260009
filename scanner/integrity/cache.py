"""A digest cache so repeated CI runs skip rehashing unchanged files.

Keyed on (absolute path, device, inode, size, mtime_ns, ctime_ns, algorithm). ``ctime`` cannot
be set back by an unprivileged user (unlike ``mtime``, which ``touch -d`` restores), so an
in-place edit always invalidates the entry. The cache only saves work: it stores digests that
mlscan computed itself, never expectations, so a poisoned cache can at worst make mlscan
recompute. Any problem with the cache file (locked, read-only, corrupt) disables it for the run.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

CACHE_ENV = "MLSCAN_CACHE_DIR"
SCHEMA = """CREATE TABLE IF NOT EXISTS digests (
    path TEXT NOT NULL, algorithm TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL, PRIMARY KEY (path, algorithm))"""


def default_cache_path() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlscan")
    return Path(base) / "digests.sqlite"


def stat_key(path: Path) -> tuple[str, int, int, int, int, int]:
    st = os.stat(path, follow_symlinks=False)
    return (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class DigestCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()
        self.problem = ""
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False)
            self._db.execute(SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            self._disable(f"digest cache {self.path} unusable ({exc}); hashing everything")

    def _disable(self, problem: str) -> None:
        self.problem = problem
        if self._db is not None:
            self._db.close()
        self._db = None

    def get(self, path: Path, algorithm: str) -> str | None:
        if self._db is None:
            return None
        try:
            key = stat_key(path)
            row = self._db.execute(
                "SELECT digest FROM digests WHERE path=? AND algorithm=? AND dev=? AND ino=? "
                "AND size=? AND mtime_ns=? AND ctime_ns=?",
                (key[0], algorithm, *key[1:])).fetchone()
        except (OSError, sqlite3.Error):
            return None
        return str(row[0]) if row else None

    def put(self, path: Path, algorithm: str, digest: str,
            before: tuple[str, int, int, int, int, int]) -> None:
        """Store ``digest`` only if the file's stat key is still ``before`` (taken before
        hashing): a file modified while it was hashed is never cached."""
        if self._db is None:
            return
        try:
            key = stat_key(path)
            if key != before:
                return
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?,?,?,?)",
                                 (key[0], algorithm, *key[1:], digest))
        except (OSError, sqlite3.Error) as exc:
            self._disable(f"digest cache {self.path} not writable ({exc})")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
