"""Verification: diff a model tree against a manifest and turn every difference into a finding.

Pure per call: inputs in, (Verification, findings) out; nothing is remembered between models.
The manifest is treated as hostile until proven otherwise: names are validated before any path
is built from them, and only names that pass are looked up inside the model root.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scanner.core.finding import Finding, Location, Severity
from scanner.core.rules import RuleCatalogue
from scanner.integrity.cache import DigestCache, stat_key
from scanner.integrity.hashing import hash_files
from scanner.integrity.interface import (
    FileCheck,
    FileStatus,
    Manifest,
    ManifestEntry,
    SignatureCheck,
    SignatureStatus,
    Strength,
    Verification,
)
from scanner.integrity.manifests import LFS_POINTER_HEADER
from scanner.integrity.oms import DEFAULT_IGNORES
from scanner.integrity.tree import Tree, enumerate_tree

_DEVICE_NAME = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9]|conin\$|conout\$)(\..*)?$", re.I)
# Files whose exclusion from a signature matters: a loader reads them.
_MODEL_LIKE = re.compile(r"\.(pt|pth|bin|ckpt|pkl|pickle|joblib|npy|npz|safetensors|onnx|h5|"
                         r"hdf5|keras|pb|gguf|ggml|py|json|model|msgpack|tflite)$", re.I)


def unsafe_name(name: str) -> str:
    """Why a manifest name must not be used as a path ("" when it is safe)."""
    if not name or name == ".":
        return "" if name == "." else "an empty name"
    if "\0" in name:
        return "a NUL byte"
    if "\\" in name:
        return "a backslash (a Windows path separator)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "a '..' component (path traversal)"
    if any(_DEVICE_NAME.match(p) for p in parts):
        return "a device name"
    if any(p in ("", ".") for p in parts):
        return "an empty or '.' component"
    return ""


@dataclass(frozen=True)
class VerifyRequest:
    root: Path
    manifest: Manifest | None
    signature: SignatureCheck | None = None
    signature_location: str = ""
    require_signature: bool = False
    ignore_unsigned_files: bool = False
    exclude: frozenset[Path] = frozenset()   # the manifest/signature files themselves
    display_prefix: str = ""                 # prefix for finding locations (multi-target scans)


class _Run:
    def __init__(self, request: VerifyRequest, rules: RuleCatalogue) -> None:
        self.request, self.rules = request, rules
        self.findings: list[Finding] = []
        self.checks: list[FileCheck] = []
        self.notes: list[str] = []

    def where(self, rel: str) -> Location:
        prefix = self.request.display_prefix
        return Location(f"{prefix}/{rel}" if prefix and rel else (rel or prefix or "."))

    def add(self, rule_id: str, rel: str, evidence: str, severity: Severity | None = None,
            location: Location | None = None) -> None:
        self.findings.append(self.rules.finding(rule_id, location or self.where(rel), evidence,
                                                severity=severity))


def verify(request: VerifyRequest, rules: RuleCatalogue, *,
           precomputed: Mapping[str, str] | None = None, cache: DigestCache | None = None,
           workers: int | None = None) -> tuple[Verification, list[Finding]]:
    """``precomputed`` maps relative paths to sha256 digests already computed (by the scan
    that read the same bytes), so ``mlscan scan --signature`` reads each byte once."""
    run = _Run(request, rules)
    _signature_findings(run)
    manifest = request.manifest
    if manifest is None:
        return _result(run, None), run.findings
    ignores = frozenset(manifest.ignore_paths) | frozenset(DEFAULT_IGNORES)
    tree = enumerate_tree(request.root, ignores, request.exclude)
    entries = _valid_entries(run, manifest)
    matched = _match(run, manifest, tree, entries)
    _check_files(run, tree, matched, precomputed or {}, cache, workers)
    _unlisted(run, manifest, tree, set(matched.values()))
    _ok_summary(run, manifest)
    return _result(run, manifest), run.findings


def _signature_findings(run: _Run) -> None:
    sig, req = run.request.signature, run.request
    where = Location(req.signature_location or req.display_prefix or ".")
    if sig is None or sig.status is SignatureStatus.UNSIGNED:
        if req.require_signature:
            run.add("MLS-SIG-003", "", "a trusted key was given but the manifest "
                    f"{req.manifest.source if req.manifest else ''} carries no signature",
                    location=where)
        return
    rule = {SignatureStatus.BAD: "MLS-SIG-001", SignatureStatus.UNTRUSTED: "MLS-SIG-002",
            SignatureStatus.UNVERIFIED: "MLS-SIG-004" if sig.method == "sigstore" else "MLS-SIG-005"
            }.get(sig.status)
    if rule:
        signer = f" (signer {sig.signer})" if sig.signer else ""
        run.add(rule, "", f"{sig.method} signature: {sig.detail}{signer}", location=where)


def _valid_entries(run: _Run, manifest: Manifest) -> list[ManifestEntry]:
    counts = Counter(e.path for e in manifest.entries)
    valid = []
    for entry in manifest.entries:
        reason = unsafe_name(entry.path)
        if reason:
            run.checks.append(FileCheck(entry.path, FileStatus.UNSAFE_NAME))
            run.add("MLS-INT-008", "", f"manifest {manifest.source} lists {entry.path!r}, which has "
                    f"{reason}; the entry was not used", location=Location(manifest.source))
            continue
        if counts[entry.path] > 1:
            if entry is next(e for e in manifest.entries if e.path == entry.path):
                run.add("MLS-INT-012", entry.path, f"{entry.path!r} is listed {counts[entry.path]} "
                        f"times in {manifest.source}")
            continue
        valid.append(entry)
    return valid


def _match(run: _Run, manifest: Manifest, tree: Tree,
           entries: list[ManifestEntry]) -> dict[ManifestEntry, str]:
    """Entry -> relative path in the tree. Missing entries are reported here."""
    present = set(tree.files) | set(tree.symlinks)
    by_name: dict[str, list[str]] = {}
    for name in present:
        by_name.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    matched: dict[ManifestEntry, str] = {}
    skipped = 0
    for entry in entries:
        rel: str | None = entry.path if entry.path in present else None
        if rel is None and (tree.single_file or not manifest.complete):
            # single-file targets and partial/catalogue manifests match by file name
            candidates = by_name.get(entry.path.rsplit("/", 1)[-1], [])
            if entry.path == "." and tree.single_file:
                candidates = list(tree.files)
            rel = candidates[0] if len(candidates) == 1 else None
        if rel is not None:
            matched[entry] = rel
        elif manifest.catalogue or tree.single_file:
            skipped += 1
        else:
            run.checks.append(FileCheck(entry.path, FileStatus.MISSING,
                                        entry.digest.algorithm if entry.digest else ""))
            run.add("MLS-INT-002", entry.path, f"listed in {manifest.source} "
                    f"({entry.digest or f'size {entry.size}'}) but not present")
    if skipped:
        run.notes.append(f"{skipped} manifest entries name files not in this "
                         f"{'file' if tree.single_file else 'tree'}; not checked")
    return matched


def _check_files(run: _Run, tree: Tree, matched: dict[ManifestEntry, str],
                 precomputed: Mapping[str, str], cache: DigestCache | None,
                 workers: int | None) -> None:
    manifest = run.request.manifest
    assert manifest is not None
    to_hash: dict[Path, set[str]] = {}
    plans: list[tuple[ManifestEntry, str, Path]] = []
    for entry, rel in matched.items():
        if rel in tree.symlinks:
            target, inside = tree.symlinks[rel]
            if not (manifest.allow_symlinks and inside):
                _symlink_finding(run, rel, target, inside, listed=True)
                continue
            path = Path(target)
        else:
            path = tree.files[rel]
        plans.append((entry, rel, path))
        if entry.digest is not None:
            to_hash.setdefault(path, set()).add(entry.digest.compute_algorithm)
    digests = _digests(run, to_hash, {tree.files[r]: d for r, d in precomputed.items()
                                      if r in tree.files}, cache, workers)
    for entry, rel, path in sorted(plans, key=lambda p: p[1]):
        _compare(run, entry, rel, path, digests.get(path))


def _digests(run: _Run, wanted: dict[Path, set[str]], precomputed: dict[Path, str],
             cache: DigestCache | None, workers: int | None
             ) -> dict[Path, tuple[dict[str, str], set[str]] | OSError]:
    """path -> ({algorithm: hex}, algorithms served from the cache), or the read error."""
    known: dict[Path, dict[str, str]] = {p: {} for p in wanted}
    cached: dict[Path, set[str]] = {p: set() for p in wanted}
    before: dict[Path, tuple[str, int, int, int, int, int]] = {}
    for path, algorithms in wanted.items():
        if "sha256" in algorithms and path in precomputed:
            known[path]["sha256"] = precomputed[path]
        for algorithm in algorithms - set(known[path]):
            hit = cache.get(path, algorithm) if cache else None
            if hit:
                known[path][algorithm] = hit
                cached[path].add(algorithm)
    missing = {p: a - set(known[p]) for p, a in wanted.items() if a - set(known[p])}
    for path in missing:
        try:
            before[path] = stat_key(path)
        except OSError:
            pass
    computed = hash_files(sorted(missing), lambda p: missing[p], workers)
    out: dict[Path, tuple[dict[str, str], set[str]] | OSError] = {}
    for path in wanted:
        result = computed.get(path)
        if isinstance(result, OSError):
            out[path] = result
            continue
        if result:
            known[path].update(result)
            if cache and path in before:
                for algorithm, value in result.items():
                    cache.put(path, algorithm, value, before[path])
        out[path] = (known[path], cached[path])
    return out


def _compare(run: _Run, entry: ManifestEntry, rel: str, path: Path,
             digests: tuple[dict[str, str], set[str]] | OSError | None) -> None:
    if isinstance(digests, OSError):
        run.checks.append(FileCheck(rel, FileStatus.UNREADABLE))
        run.add("MLS-INT-013", rel, f"cannot hash: {digests.strerror or digests}")
        return
    try:
        size = path.stat().st_size
    except OSError as exc:
        run.checks.append(FileCheck(rel, FileStatus.UNREADABLE))
        run.add("MLS-INT-013", rel, f"cannot stat: {exc.strerror or exc}")
        return
    pointer = _is_lfs_pointer(path, size)
    if entry.digest is None:
        status = FileStatus.NO_DIGEST if entry.size in (None, size) else FileStatus.SIZE_MISMATCH
        run.checks.append(FileCheck(rel, status, "size", str(entry.size), str(size)))
        if status is FileStatus.SIZE_MISMATCH:
            run.add("MLS-INT-009", rel, f"size {size} bytes, manifest says {entry.size}")
        return
    values, from_cache = digests or ({}, set())
    algorithm = entry.digest.compute_algorithm
    actual = values.get(algorithm, "")
    expected = entry.digest
    if not expected.matches(actual) or (entry.size is not None and entry.size != size):
        run.checks.append(FileCheck(rel, FileStatus.MISMATCH, expected.algorithm, expected.value,
                                    actual, algorithm in from_cache))
        size_note = f"; size {size}, expected {entry.size}" if entry.size not in (None, size) else ""
        run.add("MLS-INT-001", rel, f"{expected.algorithm} expected {expected.value}, got "
                f"{actual}{size_note} (manifest {run.request.manifest.source if run.request.manifest else ''})")
        if pointer:
            run.add("MLS-INT-011", rel, f"{size}-byte git-lfs pointer where the content was expected")
        return
    strength = expected.strength
    status = {Strength.STRONG: FileStatus.MATCH, Strength.WEAK: FileStatus.WEAK_MATCH,
              Strength.PARTIAL: FileStatus.PARTIAL_MATCH}[strength]
    run.checks.append(FileCheck(rel, status, expected.algorithm, expected.value, actual,
                                algorithm in from_cache))
    if strength is Strength.WEAK:
        run.add("MLS-INT-005", rel, f"matches {expected.algorithm} {expected.value} only; "
                "not proof against deliberate substitution")
    elif strength is Strength.PARTIAL:
        run.add("MLS-INT-006", rel, f"matches sha256 prefix {expected.value} "
                f"({len(expected.value) * 4} bits) only; full sha256 is {actual}")


def _unlisted(run: _Run, manifest: Manifest, tree: Tree, listed: set[str]) -> None:
    for rel, (target, inside) in sorted(tree.symlinks.items()):
        if rel not in listed:
            _symlink_finding(run, rel, target, inside, listed=False)
    for rel in tree.specials:
        run.checks.append(FileCheck(rel, FileStatus.UNREADABLE))
        run.add("MLS-INT-013", rel, "special file (FIFO, socket or device) in the model tree")
    for rel, problem in tree.errors:
        run.checks.append(FileCheck(rel, FileStatus.UNREADABLE))
        run.add("MLS-INT-013", rel, f"cannot list or stat: {problem}")
    for rel in tree.ignored:
        run.checks.append(FileCheck(rel, FileStatus.IGNORED))
        if rel not in DEFAULT_IGNORES:
            severity = Severity.MEDIUM if _MODEL_LIKE.search(rel) else None
            run.add("MLS-INT-004", rel, f"excluded by the manifest's ignore_paths "
                    f"({', '.join(sorted(manifest.ignore_paths))}); not covered", severity)
    if not manifest.complete or tree.single_file:
        return
    for rel, path in sorted(tree.files.items()):
        if rel in listed:
            continue
        size = _size(path)
        run.checks.append(FileCheck(rel, FileStatus.EXTRA))
        if run.request.ignore_unsigned_files:
            run.notes.append(f"{rel}: not in the manifest, ignored (--ignore-unsigned-files)")
            continue
        what = "an empty file" if size == 0 else f"{size} bytes"
        run.add("MLS-INT-003", rel, f"{what}, not listed in {manifest.source}")
        if size is not None and _is_lfs_pointer(path, size):
            run.add("MLS-INT-011", rel, f"{size}-byte git-lfs pointer file")


def _symlink_finding(run: _Run, rel: str, target: str, inside: bool, *, listed: bool) -> None:
    run.checks.append(FileCheck(rel, FileStatus.SYMLINK, actual=target))
    where = "inside the model directory" if inside else "OUTSIDE the model directory"
    why = "the manifest does not allow symlinks" if listed else "not listed in the manifest"
    run.add("MLS-INT-007", rel, f"symlink to {target} ({where}); {why}; not followed",
            None if not inside else Severity.MEDIUM)


def _ok_summary(run: _Run, manifest: Manifest) -> None:
    strong = [c for c in run.checks if c.status is FileStatus.MATCH]
    if any(f.severity >= Severity.LOW for f in run.findings) or not strong:
        return
    sig = run.request.signature
    signed = f"; signature verified ({sig.algorithm}, {sig.signer})" \
        if sig and sig.status is SignatureStatus.VERIFIED else "; manifest unsigned"
    algorithms = ", ".join(sorted({c.algorithm for c in strong}))
    run.add("MLS-INT-010", "", f"{len(strong)} file(s) match {manifest.kind} manifest "
            f"{manifest.source} ({algorithms}){signed}",
            location=Location(run.request.display_prefix or str(run.request.root)))


def _is_lfs_pointer(path: Path, size: int) -> bool:
    if size > 1024:
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(LFS_POINTER_HEADER)) == LFS_POINTER_HEADER
    except OSError:
        return False


def _size(path: Path) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except OSError:
        return None


def _result(run: _Run, manifest: Manifest | None) -> Verification:
    req = run.request
    return Verification(
        root=str(req.root), manifest_kind=manifest.kind if manifest else "none",
        manifest_source=manifest.source if manifest else "",
        files=tuple(sorted(run.checks, key=lambda c: c.path)), signature=req.signature,
        ignore_paths=tuple(sorted(manifest.ignore_paths)) if manifest else (),
        root_digest=manifest.root_digest if manifest else None, notes=tuple(run.notes))
