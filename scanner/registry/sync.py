"""``mlscan registry sync``: pull a published registry, verify everything, apply atomically.

Order of checks: walk the root chain from the pinned (or last seen) root, each step signed by
the thresholds of the old and the new root; refuse an expired root; verify the index against
the current root's index role, refuse it expired (freeze) or older than the last seen version
(rollback; the same version only with identical bytes); then fetch each OMS bundle, check its
sha256 and length against the index and verify it with its publisher keys. Only when all of
that passed is the local state replaced, in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from scanner.integrity import oms
from scanner.registry import metadata
from scanner.registry.interface import FileRecord, ModelRecord, RegistryError, RegistryRefused
from scanner.registry.store import Registry, insert_model, now

MAX_METADATA_BYTES = 32 << 20
MAX_ROOT_STEPS = 1000


class Source:
    """Reads files of a published registry from https:// (or http:// when allowed) or a path."""

    def __init__(self, base: str, allow_insecure_http: bool = False, timeout: float = 30.0,
                 ca_bundle: str | None = None) -> None:
        scheme = urlparse(base).scheme
        if scheme == "http" and not allow_insecure_http:
            raise RegistryError(f"{base}: plain http is refused (the metadata is signed, but a "
                                "network attacker could still withhold updates or watch what "
                                "you fetch); use https or pass --allow-insecure-http")
        if scheme not in ("http", "https", "file", ""):
            raise RegistryError(f"{base}: unsupported scheme {scheme!r}; use https:// or a directory")
        self.base = base if base.endswith("/") else base + "/"
        self.remote = scheme in ("http", "https")
        self.timeout, self.ca_bundle = timeout, ca_bundle
        self._session: Any = None

    def get(self, rel: str, *, optional: bool = False) -> bytes | None:
        if not self.remote:
            path = Path(urlparse(self.base).path if self.base.startswith("file:") else self.base) / rel
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                if optional:
                    return None
                raise RegistryError(f"{path}: missing from the registry directory") from None
            except OSError as exc:
                raise RegistryError(f"cannot read {path}: {exc.strerror or exc}") from None
            return data
        return self._get_http(urljoin(self.base, rel), optional)

    def _get_http(self, url: str, optional: bool) -> bytes | None:
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.verify = self.ca_bundle or True  # TLS verification is never disabled
        try:
            response = self._session.get(url, timeout=self.timeout, stream=True,
                                         allow_redirects=False)
        except requests.RequestException as exc:
            raise RegistryError(f"cannot reach {url}: {exc}") from None
        with response:
            if response.status_code == 404 and optional:
                return None
            if response.status_code != 200:
                raise RegistryError(f"{url}: HTTP {response.status_code}; check the registry URL")
            data = response.raw.read(MAX_METADATA_BYTES + 1, decode_content=True)
        if len(data) > MAX_METADATA_BYTES:
            raise RegistryRefused(f"{url}: larger than {MAX_METADATA_BYTES >> 20} MiB; refusing it")
        return bytes(data)


def sync(registry: Registry, url: str, pinned_root: Path | None, *,
         allow_insecure_http: bool = False, ca_bundle: str | None = None) -> dict[str, Any]:
    source = Source(url, allow_insecure_http, ca_bundle=ca_bundle)
    origin = f"sync:{url}"
    state = registry.sync_state(url)
    root = _start_root(state, pinned_root)
    for _ in range(MAX_ROOT_STEPS):
        raw = source.get(f"root/{root['version'] + 1}.root.json", optional=True)
        if raw is None:
            break
        root = metadata.verify_root_update(root, raw, root["version"] + 1)
    metadata.check_not_expired(root, f"root version {root['version']}")
    index_raw = source.get("index.json")
    assert index_raw is not None
    index = metadata.verify_index(root, index_raw)
    index_sha = hashlib.sha256(index_raw).hexdigest()
    if state is not None:
        if index["version"] < state[2]:
            raise RegistryRefused(f"index version {index['version']} is older than version "
                                  f"{state[2]} already seen (rollback attack or stale mirror)")
        if index["version"] == state[2] and index_sha != state[3]:
            raise RegistryRefused(f"index version {index['version']} changed content without a "
                                  "new version number; refusing it")
    models = _verified_models(source, index, origin)
    _apply(registry, url, origin, root, index, index_sha, models)
    return {"root_version": root["version"], "index_version": index["version"],
            "models": len(models), "known_bad": len(index.get("known_bad", [])),
            "revoked_keys": len(index.get("revoked_keys", []))}


def _start_root(state: tuple[int, bytes, int, str] | None, pinned: Path | None) -> dict[str, Any]:
    if state is not None:
        return json.loads(state[1])  # type: ignore[no-any-return]
    if pinned is None:
        raise RegistryError("first sync from this URL needs the pinned root of trust: "
                            "--root root.json (1.root.json from the publisher, obtained out of band)")
    try:
        raw = pinned.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read pinned root {pinned}: {exc.strerror or exc}") from None
    envelope, payload = metadata.open_envelope(raw, metadata.ROOT_PAYLOAD_TYPE, f"pinned root {pinned}")
    metadata.check_threshold(envelope, metadata.keys_of(payload), payload["roles"]["root"],
                             f"pinned root {pinned}")
    return payload


def _verified_models(source: Source, index: dict[str, Any], origin: str) -> list[ModelRecord]:
    from scanner.integrity.interface import SignatureStatus
    from scanner.integrity.signature import check_bundle

    publisher = metadata.keys_of({"keys": index.get("publisher_keys", {})})
    models = []
    for ref, entry in sorted((index.get("models") or {}).items()):
        name, _, version = ref.rpartition("@")
        bundle_info = entry.get("bundle") or {}
        path = str(bundle_info.get("path", ""))
        if not path.startswith("models/") or ".." in path.split("/"):
            raise RegistryRefused(f"index entry {ref}: bundle path {path!r} is not under models/")
        data = source.get(path)
        assert data is not None
        if len(data) != bundle_info.get("length") or \
                hashlib.sha256(data).hexdigest() != bundle_info.get("sha256"):
            raise RegistryRefused(f"{path}: length or sha256 differs from the signed index")
        keys = [publisher[k] for k in entry.get("publisher_keys", []) if k in publisher]
        parsed = _parse_bundle_bytes(data, path)
        check = check_bundle(parsed, keys)
        if check.status is not SignatureStatus.VERIFIED or parsed.manifest is None:
            raise RegistryRefused(f"{path} ({ref}) does not verify with its publisher key: {check.detail}")
        if parsed.manifest.root_digest != entry.get("root_digest"):
            raise RegistryRefused(f"{path}: root digest differs from the index entry for {ref}")
        signer = next(iter(entry.get("publisher_keys", [])), None)
        sizes = entry.get("sizes") or {}
        files = tuple(FileRecord(e.path, e.digest.algorithm, e.digest.value, sizes.get(e.path))
                      for e in parsed.manifest.entries if e.digest is not None)
        models.append(ModelRecord(name, version, entry["root_digest"], str(entry.get("source", "")),
                                  origin, now(), signer, files, data))
    return models


def _parse_bundle_bytes(data: bytes, label: str) -> oms.ParsedBundle:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return oms.ParsedBundle("key", None, None, problem=f"{label}: not valid JSON ({exc})")
    return oms.parse_bundle(raw, label)


def _apply(registry: Registry, url: str, origin: str, root: dict[str, Any],
           index: dict[str, Any], index_sha: str, models: list[ModelRecord]) -> None:
    revoked = {r.get("key_id"): r for r in index.get("revoked_keys", []) if isinstance(r, dict)}
    with registry.write() as db:
        db.execute("DELETE FROM models WHERE origin=?", (origin,))
        db.execute("DELETE FROM keys WHERE origin=?", (origin,))
        db.execute("DELETE FROM known_bad WHERE origin=?", (origin,))
        stamp = now()
        for ident, entry in (index.get("publisher_keys") or {}).items():
            gone = revoked.get(ident) or {}
            db.execute("INSERT OR IGNORE INTO keys VALUES (?,?,?,?,?,?,?,?)",
                       (ident, str(entry.get("name", ident[:16])), str(entry["pem"]),
                        str(entry.get("alg", "")), origin, stamp, gone.get("revoked_at"),
                        gone.get("reason")))
        for model in models:
            if db.execute("SELECT 1 FROM models WHERE name=? AND version=?",
                          (model.name, model.version)).fetchone():
                continue  # a local entry of the same name wins; it is the user's own decision
            insert_model(db, model)
        for bad in index.get("known_bad", []):
            db.execute("INSERT OR IGNORE INTO known_bad VALUES (?,?,?,?)",
                       (str(bad["sha256"]).lower(), str(bad.get("reason", "")), origin, stamp))
        db.execute("INSERT OR REPLACE INTO sync_state VALUES (?,?,?,?,?,?)",
                   (url, root["version"], json.dumps(root).encode(), index["version"], index_sha, stamp))
