"""Fetch orchestration: resolve, download into quarantine while hashing, verify, scan, and
only then let the caller promote.

Every expectation about a file is checked, whoever made it: the source (Hugging Face tree
listing, a torch.hub name prefix), ``--sha256``, ``--manifest``, and the registry. A file whose
digest or size disagrees with *any* of them is a finding and blocks promotion whatever
``--fail-on`` says (those bytes are not what anyone vouched for); the content scan then decides
per ``--fail-on``. The scan reads the quarantined files, and the digest the scan computed over
the bytes it analyzed is compared with the digest taken while downloading, so what lands in
``--dest`` is exactly what was verified and scanned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.core.finding import Finding, Location
from scanner.core.result import ScanResult
from scanner.integrity.interface import Digest, Manifest, Strength
from scanner.sources.http import Download, HttpClient, HttpOptions, redact
from scanner.sources.interface import (
    Expectation,
    FetchError,
    ReferenceError,
    RemoteFile,
    Resolved,
    Selection,
    source_for,
)
from scanner.sources.quarantine import Quarantine

if TYPE_CHECKING:
    from scanner.engine import ScanOptions
    from scanner.sources.progress import ByteProgress

LFS_POINTER_HEADER = b"version https://git-lfs.github.com/spec/v1"
# Rules whose findings mean "these bytes are not what was vouched for": never promoted.
INTEGRITY_FAILURES = frozenset({"MLS-FET-001", "MLS-FET-003", "MLS-FET-005", "MLS-FET-008"})


@dataclass(frozen=True)
class FetchRequest:
    reference: str
    sha256: str | None = None
    manifest: Path | None = None
    selection: Selection = field(default_factory=Selection)
    http: HttpOptions = field(default_factory=HttpOptions)


@dataclass
class FileOutcome:
    """One file after download and verification (``metadata.fetch.files`` in reports)."""

    path: str
    url: str
    length: int
    sha256: str | None
    status: str
    checks: list[dict[str, str]] = field(default_factory=list)
    insecure_hosts: tuple[str, ...] = ()
    resumed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "url": self.url, "size": self.length, "sha256": self.sha256,
                "status": self.status, "checks": self.checks,
                "insecure_hosts": list(self.insecure_hosts), "resumed": self.resumed}


@dataclass
class Staged:
    """Downloaded, verified and scanned files waiting in quarantine."""

    resolved: Resolved
    quarantine: Quarantine
    result: ScanResult
    files: list[FileOutcome]
    info: dict[str, Any]            # the same dict as result.metadata["fetch"]
    promoted: list[Path] = field(default_factory=list)

    @property
    def integrity_ok(self) -> bool:
        # statuses too: a policy that disables or suppresses a rule must not unblock tampering
        return not any(f.rule_id in INTEGRITY_FAILURES for f in self.result.findings) and \
            not self.resolved.rejected and \
            all(f.status not in ("mismatch", "size-mismatch", "incomplete") for f in self.files)

    def integrity_problems(self) -> list[Finding]:
        return [f for f in self.result.findings if f.rule_id in INTEGRITY_FAILURES]

    def promote(self) -> list[Path]:
        if not self.integrity_ok:
            raise FetchError("refusing to promote files that failed verification")
        self.promoted = self.quarantine.promote([f.path for f in self.files])
        self.info["promoted"] = True
        return self.promoted


def registry_expectation(resolved: Resolved, remote: RemoteFile) -> Expectation | None:
    """The digest the trusted registry pins for this file: a registered model whose recorded
    source is this reference (as given, or pinned to its commit) and that lists this path.
    Without a registry (no file at the default path or $MLSCAN_REGISTRY) there is none."""
    registry = _open_registry()
    if registry is None:
        return None
    try:
        sources = {resolved.reference, resolved.pinned or resolved.reference}
        for model in registry.models():
            if model.source not in sources:
                continue
            for record in model.files:
                if record.path == remote.path or (len(model.files) == 1
                                                  and record.path == remote.path.rsplit("/", 1)[-1]):
                    return Expectation(f"registry {model.ref} ({model.trust_label})",
                                       Digest(record.algorithm, record.digest), record.size)
    finally:
        registry.close()
    return None


def _open_registry() -> Any:
    """The user's registry if one exists; a broken one is an input error (exit 2)."""
    from scanner.registry.interface import RegistryError
    from scanner.registry.store import default_path, open_registry

    path = default_path()
    if not path.is_file():
        return None
    try:
        return open_registry(path)
    except RegistryError as exc:
        raise FetchError(str(exc)) from None


def registry_findings(result: ScanResult, rules: Any) -> list[Finding]:
    """Known-bad digests (and known-good matches) among the downloaded files."""
    registry = _open_registry()
    if registry is None:
        return []
    from scanner.registry.lookup import lookup_findings

    try:
        return lookup_findings(registry, result, rules)
    finally:
        registry.close()


def _manifest_expectations(manifest: Manifest, rel: str) -> list[Expectation]:
    """Entries for ``rel``, by relative path first, then by unique basename."""
    source = f"manifest {manifest.source}"
    norm = [(e.path.removeprefix("./"), e) for e in manifest.entries]
    hits = [e for path, e in norm if path == rel]
    if not hits:
        base = rel.rsplit("/", 1)[-1]
        named = [e for path, e in norm if path.rsplit("/", 1)[-1] == base]
        if len({(e.digest, e.size) for e in named}) == 1:
            hits = named[:1]
    return [Expectation(source, e.digest, e.size) for e in hits if e.digest or e.size is not None]


def plan(resolved: Resolved, request: FetchRequest) -> list[RemoteFile]:
    """The resolved files with every expectation attached (command line, manifest, registry)."""
    manifest = None
    if request.manifest is not None:
        from scanner.integrity.manifests import load_manifest  # the lead's readers, lazily

        manifest = load_manifest(request.manifest)  # ManifestError: the CLI exits 2
    if request.sha256 and len(resolved.files) != 1:
        raise ReferenceError(f"--sha256 is the digest of one file, but {resolved.reference} "
                             f"selects {len(resolved.files)}; narrow it with --include or a path, "
                             "or give a --manifest")
    planned = []
    for remote in resolved.files:
        extra: list[Expectation] = []
        if request.sha256:
            extra.append(Expectation("--sha256", Digest("sha256", request.sha256.lower())))
        if manifest is not None:
            extra.extend(_manifest_expectations(manifest, remote.path))
        pinned = registry_expectation(resolved, remote)
        if pinned is not None:
            extra.append(pinned)
        planned.append(remote.with_expectations(extra))
    return planned


def _check_max_size(files: list[RemoteFile], options: HttpOptions) -> None:
    if options.max_size is None:
        return
    for remote in files:
        if remote.size is not None and remote.size > options.max_size:
            raise FetchError(f"{remote.path}: listed at {remote.size} bytes, more than --max-size "
                             f"{options.max_size}; nothing was downloaded")


class _Verifier:
    """Turns a download and its expectations into a FileOutcome and findings."""

    def __init__(self, rules: Any, resolved: Resolved) -> None:
        self.rules = rules
        self.resolved = resolved
        self.findings: list[Finding] = []

    def add(self, rule_id: str, rel: str, evidence: str) -> None:
        self.findings.append(self.rules.finding(rule_id, Location(rel), evidence))

    def verify(self, remote: RemoteFile, download: Download, staged: Path) -> FileOutcome:
        rel, digests = remote.path, download.digests
        origin = f"{redact(remote.url)}" + (f" at commit {remote.commit}" if remote.commit else "")
        outcome = FileOutcome(rel, redact(remote.url), download.length, digests.get("sha256"),
                              "no-digest", insecure_hosts=download.insecure_hosts,
                              resumed=download.resumed)
        strengths: list[Strength] = []
        failed = False
        for expectation in remote.expected:
            if expectation.size is not None and (not download.complete or download.length != expectation.size):
                got = f"more than {expectation.size}" if not download.complete else str(download.length)
                self.add("MLS-FET-003", rel, f"{got} bytes received from {origin}, but "
                         f"{expectation.source} says {expectation.size}. The download was stopped "
                         "or is a different file; nothing from it is promoted.")
                outcome.checks.append({"source": expectation.source, "algorithm": "size",
                                       "expected": str(expectation.size), "outcome": "mismatch"})
                failed = True
            digest = expectation.digest
            if digest is None:
                continue
            actual = digests.get(digest.compute_algorithm, "") if download.complete else ""
            check = {"source": expectation.source, "algorithm": digest.algorithm,
                     "expected": digest.value, "actual": actual}
            if not actual:
                check["outcome"] = "not-checked"
            elif digest.matches(actual):
                check["outcome"] = "match"
                strengths.append(digest.strength)
            else:
                check["outcome"] = "mismatch"
                failed = True
                shown = digest.algorithm if digest.strength is not Strength.PARTIAL else "sha256 (prefix)"
                self.add("MLS-FET-001", rel, f"{shown} of the downloaded bytes is {actual}, but "
                         f"{expectation.source} expects {digest.value}. Source: {origin}. The "
                         "file was tampered with, corrupted, or the expectation is for another "
                         "version; it was not promoted.")
            outcome.checks.append(check)
        self._pointer(remote, staged, download, origin)
        if download.insecure_hosts:
            self.add("MLS-FET-004", rel, f"downloaded over plain http from "
                     f"{', '.join(download.insecure_hosts)} (allowed by --allow-insecure-http): "
                     "anyone on the network path could have replaced it. Only a digest from a "
                     "trusted channel (--sha256, a signed manifest) makes this safe.")
        if not download.complete:
            outcome.status = "incomplete"
        elif failed:
            outcome.status = "mismatch" if any(c.get("outcome") == "mismatch" and c["algorithm"] != "size"
                                               for c in outcome.checks) else "size-mismatch"
        else:
            outcome.status = self._grade(remote, outcome, strengths, origin)
        return outcome

    def _grade(self, remote: RemoteFile, outcome: FileOutcome, strengths: list[Strength],
               origin: str) -> str:
        rel, sha = remote.path, outcome.sha256 or ""
        pin = self.resolved.pinned or self.resolved.reference
        if Strength.STRONG in strengths:
            sources = ", ".join(c["source"] for c in outcome.checks if c.get("outcome") == "match")
            self.add("MLS-FET-009", rel, f"sha256 {sha}, {outcome.length} bytes, from {origin}; "
                     f"matches {sources}.")
            return "verified"
        if Strength.WEAK in strengths:
            self.add("MLS-FET-007", rel, f"only a weak digest was checked "
                     f"({', '.join(c['algorithm'] for c in outcome.checks if c.get('outcome') == 'match')}"
                     f"); the sha256 of what was downloaded is {sha}. To pin it: --sha256 {sha} "
                     "(after reviewing the file) or a sha256 manifest.")
            return "weak-match"
        if Strength.PARTIAL in strengths:
            self.add("MLS-FET-006", rel, f"only the sha256 prefix in the file name was checked; the "
                     f"full sha256 is {sha}. Compare it with the publisher's full digest and pass "
                     "it with --sha256 to make this a verified fetch.")
            return "partial-match"
        self.add("MLS-FET-002", rel, f"nothing to verify {rel} against: no --sha256, manifest, "
                 f"registry entry or digest from the source ({origin}). The sha256 of the "
                 f"downloaded bytes is {sha}; check it against the publisher's and pin it: "
                 f"mlscan fetch {pin} --dest DIR --sha256 {sha}")
        return "no-digest"

    def _pointer(self, remote: RemoteFile, staged: Path, download: Download, origin: str) -> None:
        if download.length > 1024:
            return
        try:
            head = staged.read_bytes()[:1024]
        except OSError:
            return
        if head.startswith(LFS_POINTER_HEADER) and b"oid sha256:" in head:
            expected = "its content is stored in LFS" if remote.lfs else "a model file was expected"
            self.add("MLS-FET-005", remote.path, f"a git-lfs pointer file ({download.length} bytes) "
                     f"arrived from {origin}, but {expected}. A loader would read the pointer text "
                     "or fail; the real content was not fetched.")


@contextmanager
def staged_fetch(request: FetchRequest, quarantine_factory: Callable[[], Quarantine],
                 scan_options: ScanOptions | None, *, keep_quarantine: bool = False,
                 progress: ByteProgress | None = None) -> Iterator[Staged]:
    """Resolve, download, verify and (unless ``scan_options`` is None: the caller scans)
    scan into a quarantine; yield it for the caller to promote. On exit the quarantine is
    removed, unless nothing was promoted and ``keep_quarantine`` is set (then its path is in
    ``metadata['fetch']['quarantine']`` or the error message)."""
    from scanner.core.rules import load_catalogue
    from scanner.engine import Scanner

    source = source_for(request.reference)
    scanner = Scanner(scan_options) if scan_options is not None else None
    rules = scanner.rules if scanner is not None else load_catalogue()
    with HttpClient(request.http) as client:
        resolved = source.resolve(client, request.selection)
        files = plan(resolved, request)
        _check_max_size(files, request.http)
        quarantine = quarantine_factory()
        staged: Staged | None = None
        try:
            verifier = _Verifier(rules, resolved)
            for rejected in resolved.rejected:
                verifier.add("MLS-FET-008", rejected.path, f"the source lists {rejected.path!r} "
                             f"({rejected.reason}); writing it could escape the destination, so "
                             "it was not downloaded")
            outcomes = [_fetch_one(client, quarantine, remote, verifier, progress) for remote in files]
            result = scanner.scan([str(quarantine.root)]) if files and scanner else ScanResult()
            _same_bytes(result, outcomes, verifier)
            result.findings.extend(verifier.findings)
            result.findings.extend(registry_findings(result, rules))
            result.sort()
            info: dict[str, Any] = {
                "source": resolved.reference, "kind": resolved.kind, "commit": resolved.commit,
                "pinned": resolved.pinned, **resolved.details,
                "dest": None if quarantine.dest is None else str(quarantine.dest),
                "promoted": False, "quarantine": None,
                "files": [o.as_dict() for o in outcomes]}
            result.metadata["fetch"] = info
            staged = Staged(resolved, quarantine, result, outcomes, info)
            yield staged
        except FetchError as exc:
            if keep_quarantine:
                raise FetchError(f"{exc} (partial downloads kept in {quarantine.root})") from None
            raise
        finally:
            keep = keep_quarantine and (staged is None or not staged.promoted)
            if keep:
                if staged is not None:
                    staged.info["quarantine"] = str(quarantine.root)
            else:
                quarantine.discard()


def _fetch_one(client: HttpClient, quarantine: Quarantine, remote: RemoteFile,
               verifier: _Verifier, progress: ByteProgress | None) -> FileOutcome:
    from scanner.integrity.hashing import hash_file

    staged = quarantine.path_for(remote.path)
    algorithms = {e.digest.compute_algorithm for e in remote.expected if e.digest} | {"sha256"}
    sizes = [e.size for e in remote.expected if e.size is not None]
    size_hint = remote.size if remote.size is not None else (sizes[0] if sizes else None)
    if progress is not None:
        progress.start(remote.path)
    try:
        download = client.download(remote.url, staged, algorithms=algorithms, size_hint=size_hint,
                                   expected_size=max(sizes) if sizes else None, progress=progress)
    finally:
        if progress is not None:
            progress.done()
    if "git-sha1" in algorithms and download.complete and size_hint != download.length:
        # git's blob header commits to the size; recompute with the real one.
        digests = dict(download.digests)
        try:
            digests.update(hash_file(staged, ["git-sha1"]))
        except OSError as exc:
            raise FetchError(f"cannot re-read {staged}: {exc}") from None
        download = Download(download.url, download.length, digests, download.complete,
                            download.announced, download.insecure_hosts, download.resumed,
                            download.restarted)
    return verifier.verify(remote, download, staged)


def _same_bytes(result: ScanResult, outcomes: list[FileOutcome], verifier: _Verifier) -> None:
    """The scan hashed what it analyzed; it must be what was downloaded and verified."""
    scanned = {a.location.replace("\\", "/"): a.sha256 for a in result.artifacts if a.sha256}
    for outcome in outcomes:
        seen = scanned.get(outcome.path)
        if seen is not None and outcome.sha256 and seen != outcome.sha256:
            verifier.add("MLS-FET-001", outcome.path, f"the file changed in quarantine between "
                         f"download (sha256 {outcome.sha256}) and scan (sha256 {seen}); something "
                         "on this machine is writing to it. Nothing was promoted.")
            outcome.status = "mismatch"
