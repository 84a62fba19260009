"""Local registry state in one SQLite file (stdlib ``sqlite3``, WAL journal).

Every write is one ``BEGIN IMMEDIATE`` transaction: a writer killed mid-write leaves the file as
it was (SQLite's journal), and a second concurrent writer either waits briefly or gets a clear
"busy, retry". The schema is versioned with ``PRAGMA user_version`` plus an application id, so
a foreign SQLite file or a newer mlscan's registry is refused rather than misread.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scanner.registry.interface import (
    DenyRecord,
    FileRecord,
    KeyRecord,
    ModelRecord,
    RegistryError,
)

APPLICATION_ID = 0x6D6C7363  # "mlsc"
SCHEMA_VERSION = 1
REGISTRY_ENV = "MLSCAN_REGISTRY"
BUSY_TIMEOUT_S = 2.0

# index = schema version reached by running it; append only (never edit a shipped migration)
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE keys (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, pem TEXT NOT NULL,
        algorithm TEXT NOT NULL, origin TEXT NOT NULL, added_at TEXT NOT NULL,
        revoked_at TEXT, revoke_reason TEXT);
    CREATE UNIQUE INDEX keys_name ON keys(name, origin);
    CREATE TABLE models (name TEXT NOT NULL, version TEXT NOT NULL, root_digest TEXT NOT NULL,
        source TEXT NOT NULL, origin TEXT NOT NULL, added_at TEXT NOT NULL, signed_by TEXT,
        bundle BLOB, PRIMARY KEY (name, version));
    CREATE TABLE files (name TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL,
        algorithm TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER,
        FOREIGN KEY (name, version) REFERENCES models(name, version) ON DELETE CASCADE);
    CREATE INDEX files_digest ON files(digest);
    CREATE TABLE known_bad (sha256 TEXT PRIMARY KEY, reason TEXT NOT NULL, origin TEXT NOT NULL,
        added_at TEXT NOT NULL);
    CREATE TABLE sync_state (url TEXT PRIMARY KEY, root_version INTEGER NOT NULL,
        root_payload BLOB NOT NULL, index_version INTEGER NOT NULL, index_sha256 TEXT NOT NULL,
        synced_at TEXT NOT NULL);
    """,
)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def default_path() -> Path:
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "mlscan" / "registry.db"


class Registry:
    """An open registry. Use :func:`open_registry` / :func:`init_registry` to get one."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy_or(exc, self.path) from None
        try:
            yield self._db
        except BaseException:
            self._db.rollback()
            raise
        else:
            try:
                self._db.commit()
            except sqlite3.OperationalError as exc:
                self._db.rollback()
                raise _busy_or(exc, self.path) from None

    # --- keys -------------------------------------------------------------------------------
    def keys(self, include_revoked: bool = True) -> list[KeyRecord]:
        rows = self._db.execute("SELECT key_id, name, pem, algorithm, origin, added_at, revoked_at, "
                                "revoke_reason FROM keys ORDER BY name, origin").fetchall()
        records = [KeyRecord(*row) for row in rows]
        return [k for k in records if include_revoked or not k.revoked]

    def key(self, name_or_id: str) -> KeyRecord | None:
        return next((k for k in self.keys() if name_or_id in (k.name, k.key_id)), None)

    # --- models -----------------------------------------------------------------------------
    def models(self) -> list[ModelRecord]:
        rows = self._db.execute("SELECT name, version FROM models ORDER BY name, version").fetchall()
        return [m for m in (self.model(n, v) for n, v in rows) if m is not None]

    def model(self, name: str, version: str) -> ModelRecord | None:
        row = self._db.execute(
            "SELECT name, version, root_digest, source, origin, added_at, signed_by, bundle "
            "FROM models WHERE name=? AND version=?", (name, version)).fetchone()
        if row is None:
            return None
        files = tuple(FileRecord(*f) for f in self._db.execute(
            "SELECT path, algorithm, digest, size FROM files WHERE name=? AND version=? "
            "ORDER BY path", (name, version)).fetchall())
        name, version, root_digest, source, origin, added_at, signed_by, bundle = row
        return ModelRecord(name, version, root_digest, source, origin, added_at, signed_by,
                           files, bundle)

    def models_with_digest(self, digest: str) -> list[tuple[ModelRecord, FileRecord]]:
        rows = self._db.execute("SELECT DISTINCT name, version FROM files WHERE digest=?",
                                (digest,)).fetchall()
        out: list[tuple[ModelRecord, FileRecord]] = []
        for name, version in rows:
            model = self.model(name, version)
            if model:
                out.extend((model, f) for f in model.files if f.digest == digest)
        return out

    def models_with_root(self, root_digest: str) -> list[ModelRecord]:
        rows = self._db.execute("SELECT name, version FROM models WHERE root_digest=?",
                                (root_digest,)).fetchall()
        return [m for m in (self.model(n, v) for n, v in rows) if m is not None]

    # --- known bad --------------------------------------------------------------------------
    def denied(self) -> list[DenyRecord]:
        rows = self._db.execute("SELECT sha256, reason, origin, added_at FROM known_bad "
                                "ORDER BY sha256").fetchall()
        return [DenyRecord(*r) for r in rows]

    def deny_record(self, sha256: str) -> DenyRecord | None:
        row = self._db.execute("SELECT sha256, reason, origin, added_at FROM known_bad WHERE sha256=?",
                               (sha256,)).fetchone()
        return DenyRecord(*row) if row else None

    # --- sync state -------------------------------------------------------------------------
    def sync_state(self, url: str) -> tuple[int, bytes, int, str] | None:
        row = self._db.execute("SELECT root_version, root_payload, index_version, index_sha256 "
                               "FROM sync_state WHERE url=?", (url,)).fetchone()
        return (int(row[0]), bytes(row[1]), int(row[2]), str(row[3])) if row else None


def insert_model(db: sqlite3.Connection, model: ModelRecord) -> None:
    db.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?,?)",
               (model.name, model.version, model.root_digest, model.source, model.origin,
                model.added_at, model.signed_by, model.bundle))
    db.executemany("INSERT INTO files VALUES (?,?,?,?,?,?)",
                   [(model.name, model.version, f.path, f.algorithm, f.digest, f.size)
                    for f in model.files])


def _busy_or(exc: sqlite3.OperationalError, path: Path) -> RegistryError:
    if "locked" in str(exc) or "busy" in str(exc):
        return RegistryError(f"registry {path} is busy (another mlscan is writing it); retry")
    return RegistryError(f"registry {path}: {exc}")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        return db
    except sqlite3.Error as exc:
        raise RegistryError(f"cannot open registry {path}: {exc}") from None


def _check(db: sqlite3.Connection, path: Path) -> None:
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise RegistryError(f"{path} is not an mlscan registry ({exc}); create one with "
                            "`mlscan registry init`") from None
    if app_id != APPLICATION_ID:
        raise RegistryError(f"{path} is not an mlscan registry (a different SQLite database); "
                            "point --registry at an mlscan registry or run `mlscan registry init`")
    if version > SCHEMA_VERSION:
        raise RegistryError(f"{path} has registry schema {version}, newer than this mlscan knows "
                            f"({SCHEMA_VERSION}); upgrade mlscan")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for target in range(version + 1, len(MIGRATIONS) + 1):
        try:
            db.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            db.rollback()
            raise _busy_or(exc, path) from None


def open_registry(path: Path | None = None) -> Registry:
    """Open an existing registry (never creates one: a typo must not start an empty registry)."""
    path = path or default_path()
    if not path.is_file():
        raise RegistryError(f"no registry at {path}; create it with `mlscan registry init` "
                            f"(or set --registry / {REGISTRY_ENV})")
    db = _connect(path)
    _check(db, path)
    _migrate(db, path)
    return Registry(path, db)


def init_registry(path: Path | None = None) -> tuple[Registry, bool]:
    """Create (or open) the registry; returns (registry, created)."""
    path = path or default_path()
    created = not path.exists()
    if not created:
        return open_registry(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    _migrate(db, path)
    return Registry(path, db), True
