"""The registry data model: trusted keys, trusted models with their files, known-bad digests.

The SQLite file is local state, not a trust anchor by itself: every model in it was verified
against a trusted key when it was added (or is labelled "unsigned"), every synced entry came
from an index signed by a threshold of root keys, and each row says where it came from
(``origin``: "local" or "sync:<url>"), which every listing and report shows.
"""

from __future__ import annotations

from dataclasses import dataclass


class RegistryError(Exception):
    """An unusable registry or source (not a registry, newer schema, locked, unreachable):
    one line, exit 2."""

    exit_code = 2


class RegistryRefused(RegistryError):
    """A security refusal (unverified model, rollback, expired or under-signed metadata):
    exit 1, like a failing scan."""

    exit_code = 1


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    pem: str
    algorithm: str
    origin: str
    added_at: str
    revoked_at: str | None = None
    revoke_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class FileRecord:
    path: str
    algorithm: str
    digest: str
    size: int | None


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: str
    root_digest: str
    source: str
    origin: str
    added_at: str
    signed_by: str | None           # key id; None when added with --allow-unsigned
    files: tuple[FileRecord, ...] = ()
    bundle: bytes | None = None      # the OMS bundle, kept so the registry can be published

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def trust_label(self) -> str:
        return "local trust" if self.origin == "local" else f"synced from {self.origin[5:]}"


@dataclass(frozen=True)
class DenyRecord:
    sha256: str
    reason: str
    origin: str
    added_at: str


def parse_ref(ref: str) -> tuple[str, str]:
    """``owner/name@version`` -> (name, version); raises RegistryError."""
    name, sep, version = ref.rpartition("@")
    if not sep or not name or not version:
        raise RegistryError(f"{ref!r}: expected NAME@VERSION, e.g. acme/resnet50@1.0")
    return name, version
