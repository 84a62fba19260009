"""``mlscan registry publish``: write the local registry as a signed static directory.

Layout (servable from any HTTPS host or bucket)::

    root/1.root.json 2.root.json ...           DSSE-signed root metadata (keys, roles, thresholds)
    index.json                                 DSSE-signed index (short expiry, monotonic version)
    models/<name>/<version>/model.sig          the publishers' OMS bundles, unchanged

Only locally trusted, signed models are published: re-publishing synced entries would launder
someone else's trust, and an unsigned entry has no bundle a consumer could verify.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.integrity.keys import TrustedKey, key_id
from scanner.registry import metadata
from scanner.registry.interface import RegistryError
from scanner.registry.store import Registry

if TYPE_CHECKING:
    from scanner.integrity.keys import PrivateKey

_ROOT_FILE = re.compile(r"^(\d+)\.root\.json$")


def latest_root(site: Path) -> tuple[int, dict[str, Any]] | None:
    versions = sorted(int(m.group(1)) for p in (site / "root").glob("*.root.json")
                      if (m := _ROOT_FILE.match(p.name)))
    if not versions:
        return None
    raw = (site / "root" / f"{versions[-1]}.root.json").read_bytes()
    _, payload = metadata.open_envelope(raw, metadata.ROOT_PAYLOAD_TYPE, "existing root")
    return versions[-1], payload


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def publish(registry: Registry, site: Path, signers: Sequence[PrivateKey],
            root_keys: Sequence[TrustedKey] = (), threshold: int | None = None,
            index_days: float = 7.0, root_days: float = 365.0) -> dict[str, Any]:
    """Write root (a new version when keys or threshold change), index and bundles."""
    signer_ids = {key_id(k.public_key()) for k in signers}
    keys = list(root_keys) or [TrustedKey(k.public_key(), "signer") for k in signers]
    wanted = metadata.root_payload(1, keys, threshold or len(keys), metadata.expires_in(root_days))
    current = latest_root(site)
    root = current[1] if current else None
    if current is None or current[1]["roles"] != wanted["roles"] or metadata_expiring(current[1]):
        version = current[0] + 1 if current else 1
        wanted["version"] = version
        allowed = set(wanted["roles"]["root"]["keyids"])
        _require(signer_ids, wanted["roles"]["root"], f"root version {version}")
        if current is not None:  # rotation: the old root's threshold must approve the new one
            _require(signer_ids, current[1]["roles"]["root"],
                     f"rotating from root version {current[0]} (also sign with the old root keys)")
            allowed |= set(current[1]["roles"]["root"]["keyids"])
        usable = [k for k in signers if key_id(k.public_key()) in allowed]
        _atomic_write(site / "root" / f"{version}.root.json",
                      metadata.sign(metadata.ROOT_PAYLOAD_TYPE, wanted, usable))
        root = wanted
    assert root is not None
    index_signers = [k for k in signers if key_id(k.public_key()) in set(root["roles"]["index"]["keyids"])]
    _require(signer_ids, root["roles"]["index"], "the index")
    index = _index(registry, site, index_days)
    _atomic_write(site / "index.json", metadata.sign(metadata.INDEX_PAYLOAD_TYPE, index, index_signers))
    return {"root_version": root["version"], "index_version": index["version"],
            "models": len(index["models"]), "known_bad": len(index["known_bad"])}


def metadata_expiring(root: dict[str, Any]) -> bool:
    try:
        metadata.check_not_expired(root, "root")
    except RegistryError:
        return True
    return False


def _require(signer_ids: set[str], role: dict[str, Any], what: str) -> None:
    have = len(signer_ids & set(role["keyids"]))
    if have < role["threshold"]:
        raise RegistryError(f"{what} needs {role['threshold']} signature(s) from its keys; "
                            f"{have} of the --key files are among them")


def _index(registry: Registry, site: Path, days: float) -> dict[str, Any]:
    previous = 0
    if (site / "index.json").is_file():
        try:
            _, old = metadata.open_envelope((site / "index.json").read_bytes(),
                                            metadata.INDEX_PAYLOAD_TYPE, "existing index")
            previous = int(old.get("version", 0))
        except RegistryError:
            previous = 0
    models: dict[str, Any] = {}
    used_keys: set[str] = set()
    for model in registry.models():
        if model.origin != "local" or model.bundle is None or model.signed_by is None:
            continue
        rel = f"models/{model.name}/{model.version}/model.sig"
        _atomic_write(site / rel, model.bundle)
        models[model.ref] = {"root_digest": model.root_digest, "source": model.source,
                             "bundle": {"path": rel, "sha256": hashlib.sha256(model.bundle).hexdigest(),
                                        "length": len(model.bundle)},
                             "publisher_keys": [model.signed_by],
                             "sizes": {f.path: f.size for f in model.files if f.size is not None}}
        used_keys.add(model.signed_by)
    local_keys = [k for k in registry.keys() if k.origin == "local"]
    return {
        "_type": metadata.INDEX_TYPE, "version": previous + 1,
        "expires": metadata.expires_in(days),
        "models": models,
        "publisher_keys": {k.key_id: {"name": k.name, "pem": k.pem, "alg": k.algorithm}
                           for k in local_keys if k.key_id in used_keys or not k.revoked},
        "revoked_keys": [{"key_id": k.key_id, "name": k.name, "revoked_at": k.revoked_at,
                          "reason": k.revoke_reason} for k in local_keys if k.revoked],
        "known_bad": [{"sha256": d.sha256, "reason": d.reason} for d in registry.denied()
                      if d.origin == "local"],
    }
