"""The integrity workflows behind the CLI: create and sign manifests, and prepare a
verification from user inputs (signature, manifest, keys, roots) or by discovery.

Kept apart from the click layer so ``mlscan scan --signature`` and the registry reuse exactly
the same steps as ``mlscan verify``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.integrity import oms
from scanner.integrity.hashing import hash_files
from scanner.integrity.interface import ManifestError, SignatureCheck, SignatureStatus
from scanner.integrity.keys import TrustedKey, load_public_key
from scanner.integrity.manifests import detect_reader, hub_prefix_manifest, read_bundle
from scanner.integrity.signature import check_bundle, load_cert_roots
from scanner.integrity.tree import enumerate_tree
from scanner.integrity.verify import VerifyRequest

if TYPE_CHECKING:
    from scanner.integrity.keys import PrivateKey

SIGNATURE_NAMES = ("model.sig", "model.sig.json", "model.sigstore.json")
MANIFEST_NAMES = ("SHA256SUMS", "sha256sums", "sha256sums.txt", "SHA512SUMS", "B2SUMS",
                  "SHA1SUMS", "MD5SUMS", "ONNX_HUB_MANIFEST.json", "readme.md", "README.md")
DEFAULT_SIGNATURE_NAME = "model.sig"


@dataclass(frozen=True)
class TrustInputs:
    keys: tuple[TrustedKey, ...] = ()
    cert_roots: tuple[bytes, ...] = ()

    @classmethod
    def load(cls, key_paths: Sequence[Path] = (), root_paths: Sequence[Path] = ()) -> TrustInputs:
        return cls(tuple(load_public_key(p) for p in key_paths),
                   tuple(load_cert_roots(list(root_paths))))

    @property
    def given(self) -> bool:
        return bool(self.keys or self.cert_roots)


def digest_tree(root: Path, algorithm: str = "sha256", ignore_paths: Sequence[str] = (),
                exclude: Sequence[Path] = (), workers: int | None = None) -> dict[str, str]:
    """Relative POSIX path -> digest for every regular file (what a manifest lists). Refuses
    trees with symlinks or special files: what they point to is not part of the model."""
    tree = enumerate_tree(root, frozenset(ignore_paths) | frozenset(oms.DEFAULT_IGNORES),
                          frozenset(exclude))
    problems = [f"{rel}: symlink" for rel in tree.symlinks] + \
        [f"{rel}: special file" for rel in tree.specials] + [f"{r}: {m}" for r, m in tree.errors]
    if problems:
        raise ManifestError(f"{root}: cannot build a manifest: {'; '.join(problems[:5])}. "
                            "Replace symlinks with files, or --ignore them")
    results = hash_files(list(tree.files.values()), lambda _p: (algorithm,), workers)
    out = {}
    for rel, path in tree.files.items():
        value = results[path]
        if isinstance(value, OSError):
            raise ManifestError(f"cannot hash {path}: {value.strerror or value}")
        out[rel] = value[algorithm]
    return out


def model_name(root: Path) -> str:
    return root.resolve().name or "model"


def create_statement(root: Path, algorithm: str, ignore_paths: Sequence[str],
                     exclude: Sequence[Path], workers: int | None = None) -> bytes:
    files = digest_tree(root, algorithm, ignore_paths, exclude, workers)
    if not files:
        raise ManifestError(f"{root}: no files to sign")
    return oms.build_statement(model_name(root), files, algorithm,
                               [*oms.DEFAULT_IGNORES, *ignore_paths])


def sign_model(root: Path, key: PrivateKey, output: Path, algorithm: str = "sha256",
               ignore_paths: Sequence[str] = (), workers: int | None = None) -> dict[str, object]:
    """Sign ``root`` into an OMS bundle at ``output``. A signature written inside the model
    directory excludes itself and records that in ignore_paths, as model-signing does."""
    ignores = list(ignore_paths)
    if not root.is_file() and _inside(output, root):
        ignores.append(Path(os.path.relpath(output.resolve(), root.resolve())).as_posix())
    statement = create_statement(root, algorithm, ignores, [output], workers)
    bundle = oms.make_bundle(statement, key)
    output.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
    return bundle


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def discover(root: Path) -> tuple[Path | None, Path | None]:
    """(signature, manifest) files shipped inside a model directory, if any."""
    if root.is_file():
        return None, None
    signature = next((root / n for n in SIGNATURE_NAMES if (root / n).is_file()), None)
    manifest = None
    for name in MANIFEST_NAMES:
        candidate = root / name
        if candidate.is_file():
            try:
                detect_reader(candidate)
            except ManifestError:
                continue
            manifest = candidate
            break
    return signature, manifest


def prepare(root: Path, *, signature: Path | None = None, manifest: Path | None = None,
            trust: TrustInputs = TrustInputs(), require_signature: bool | None = None,
            ignore_unsigned_files: bool = False, display_prefix: str = "") -> VerifyRequest:
    """Build a verification request. Raises ManifestError for unusable inputs (exit 2)."""
    if signature is None and manifest is None:
        signature, manifest = discover(root)
        if signature is not None:
            manifest = None
    required = trust.given if require_signature is None else require_signature
    exclude = frozenset(p.resolve() for p in (signature, manifest) if p is not None)
    if signature is not None:
        parsed = read_bundle(signature)
        check = check_bundle(parsed, trust.keys, trust.cert_roots)
        return VerifyRequest(root, parsed.manifest, check, str(signature), required,
                             ignore_unsigned_files, exclude, display_prefix)
    if manifest is not None:
        if not manifest.is_file():
            raise ManifestError(f"{manifest}: no such manifest file")
        reader = detect_reader(manifest)
        if reader.kind == "oms":  # a bundle passed as --manifest: still check its signature
            return prepare(root, signature=manifest, trust=trust,
                           require_signature=require_signature,
                           ignore_unsigned_files=ignore_unsigned_files,
                           display_prefix=display_prefix)
        loaded = reader.read(manifest)
        return VerifyRequest(root, loaded, SignatureCheck(SignatureStatus.UNSIGNED),
                             str(manifest), required, ignore_unsigned_files, exclude,
                             display_prefix)
    names = [root.name] if root.is_file() else sorted(enumerate_tree(root).files)
    prefix_manifest = hub_prefix_manifest(names, f"file names in {root}")
    if prefix_manifest is None:
        raise ManifestError(
            f"{root}: no manifest found. Pass --signature model.sig (an OMS bundle) or --manifest "
            f"FILE (SHA256SUMS, Caffe readme.md, ONNX_HUB_MANIFEST.json, ...), or create one with "
            f"`mlscan manifest create {root}`")
    return VerifyRequest(root, prefix_manifest, SignatureCheck(SignatureStatus.UNSIGNED), "",
                         required, ignore_unsigned_files, exclude, display_prefix)
