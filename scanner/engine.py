"""The scan engine: targets -> artifacts -> sniff -> analyzers -> findings.

Fail closed everywhere: a file that cannot be read, a format nothing can analyze, a limit hit or
an analyzer bug each become a finding for that artifact, and the scan of everything else goes
on. Top-level files are independent units of work, scanned in parallel with ``jobs > 1``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from scanner.analyzers import analyzer_paths_for, load_analyzer
from scanner.analyzers.interface import Artifact, LimitExceeded, ScanContext
from scanner.core.blob import HashingFileBlob
from scanner.core.finding import Finding, Location
from scanner.core.limits import Limits
from scanner.core.result import ArtifactRecord, ScanError, ScanResult
from scanner.core.rules import load_catalogue
from scanner.core.tomlcompat import load_toml
from scanner.formats.interface import Format, Sniffed
from scanner.formats.sniff import sniff

SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})


@dataclass(frozen=True)
class ScanOptions:
    limits: Limits = field(default_factory=Limits)
    jobs: int = 1
    rule_dirs: tuple[Path, ...] = ()
    analyzer_options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class WorkItem:
    """A top-level file to scan: where it is on disk and how reports should name it."""

    path: Path
    display: str


@lru_cache(maxsize=1)
def _extension_policy() -> tuple[dict[str, frozenset[str]], frozenset[str], frozenset[str]]:
    from signatures import data_dir

    data = load_toml(data_dir() / "formats.toml")
    expected = {ext.lower(): frozenset(v) for ext, v in data["expected"].items()}
    return (expected, frozenset(data["disguise"]["code_formats"]),
            frozenset(e.lower() for e in data["disguise"]["data_extensions"]))


def _extension(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return os.path.splitext(base)[1].lower()


class _FileScan:
    """Scans one top-level file and everything nested in it."""

    def __init__(self, ctx: ScanContext) -> None:
        self.ctx = ctx
        self.result = ScanResult()

    def finding(self, rule_id: str, location: Location, evidence: str) -> None:
        self.result.findings.append(self.ctx.finding(rule_id, location, evidence))

    def run(self, item: WorkItem) -> ScanResult:
        location = Location(item.display)
        try:
            blob = HashingFileBlob(item.path)
        except OSError as exc:
            self.finding("MLS-GEN-001", location,
                         f"cannot open {item.path}: {exc.strerror or exc}. Check permissions and "
                         "rescan; an unscanned file must not be deployed.")
            return self.result
        try:
            record_index = len(self.result.artifacts)
            try:
                self.walk(Artifact(location, blob, item.path.name, path=item.path))
            except Exception as exc:  # noqa: BLE001 - an engine bug must not pass a file
                self.analyzer_failed("engine", Artifact(location, blob, item.path.name), "failed", exc)
            digests = blob.finish()
            if blob.changed_since_open():
                self.finding("MLS-GEN-008", location,
                             "the file changed on disk while it was being scanned; the verdict "
                             "and digest describe bytes that may no longer be there. Rescan when "
                             "nothing is writing to it.")
            if record_index < len(self.result.artifacts):
                record = self.result.artifacts[record_index]
                self.result.artifacts[record_index] = ArtifactRecord(
                    record.location, record.format, record.size, digests["sha256"], record.detail)
        except OSError as exc:
            self.finding("MLS-GEN-001", location, f"read error while scanning: {exc}")
        finally:
            blob.close()
        return self.result

    def walk(self, artifact: Artifact) -> None:
        sniffed = artifact.format_hint or sniff(artifact.blob)
        self.result.artifacts.append(ArtifactRecord(
            artifact.location.artifact, sniffed.format.value, artifact.blob.size, None, sniffed.detail))
        self.check_extension(artifact, sniffed)
        analyzers = analyzers_for(sniffed.format)
        if not analyzers:
            self.unanalyzed(artifact, sniffed)
        for analyzer in analyzers:
            if isinstance(analyzer, tuple):
                self.analyzer_failed(analyzer[0], artifact, "could not be loaded", analyzer[1])
            else:
                self.run_analyzer(analyzer, artifact)

    def run_analyzer(self, analyzer: Any, artifact: Artifact) -> None:
        try:
            for item in analyzer.analyze(artifact, self.ctx):
                if isinstance(item, Finding):
                    self.result.findings.append(item)
                else:
                    self.nested(item)
        except LimitExceeded as exc:
            self.finding(exc.rule_id, exc.location or artifact.location, str(exc))
        except Exception as exc:  # noqa: BLE001 - isolation: one analyzer bug never stops the scan
            self.analyzer_failed(analyzer.name, artifact, "failed", exc)

    def analyzer_failed(self, name: str, artifact: Artifact, what: str, exc: BaseException) -> None:
        """Record an analyzer failure as a fail-closed finding plus an error entry."""
        message = f"{name} analyzer {what}: {type(exc).__name__}: {exc}"
        self.result.errors.append(ScanError(artifact.location.artifact, message, name))
        self.finding("MLS-GEN-002", artifact.location,
                     f"{message}. The artifact was not fully analyzed, so it is treated as "
                     "unsafe; report this as an mlscan bug with the file if you can share it.")

    def nested(self, child: Artifact) -> None:
        try:
            if child.depth > self.ctx.limits.archive_depth:
                self.finding("MLS-GEN-004", child.location,
                              f"nesting depth {child.depth} exceeds the limit of "
                              f"{self.ctx.limits.archive_depth}; the member was not scanned. "
                              "Raise --max-depth only for trusted sources.")
                return
            self.walk(child)
        finally:
            child.blob.close()

    def check_extension(self, artifact: Artifact, sniffed: Sniffed) -> None:
        expected, code_formats, data_extensions = _extension_policy()
        ext = _extension(artifact.name)
        fmt = sniffed.format.value
        if sniffed.format in (Format.EMPTY, Format.UNKNOWN) or not ext:
            return  # unknown content under a model name is MLS-GEN-010, reported once
        if fmt in code_formats and ext in data_extensions:
            self.finding("MLS-GEN-006", artifact.location,
                         f"named '{artifact.name}' ({ext}, a data-only format) but the content is "
                         f"{fmt}{' (' + sniffed.detail + ')' if sniffed.detail else ''}, which can run "
                         "code when loaded")
        elif ext in expected and fmt not in expected[ext]:
            self.finding("MLS-GEN-005", artifact.location,
                         f"extension {ext} implies {', '.join(sorted(expected[ext]))} but the content "
                         f"is {fmt}")

    def unanalyzed(self, artifact: Artifact, sniffed: Sniffed) -> None:
        fmt = sniffed.format
        loc = artifact.location
        if fmt in (Format.TEXT, Format.JSON, Format.EMPTY):
            return
        if fmt in (Format.ELF, Format.PE, Format.MACHO):
            self.finding("MLS-GEN-007", loc,
                         f"{fmt.value} native code ({artifact.blob.size} bytes) shipped with the model")
        elif fmt is Format.UNKNOWN:
            expected, _, _ = _extension_policy()
            if _extension(artifact.name) in expected:
                self.finding("MLS-GEN-010", loc,
                             f"content does not match any known format, but the name "
                             f"'{artifact.name}' claims a model format")
            else:
                self.finding("MLS-GEN-009", loc, "not a recognised model format; not analyzed")
        else:
            self.finding("MLS-GEN-003", loc,
                         f"recognised as {fmt.value}{' (' + sniffed.detail + ')' if sniffed.detail else ''}"
                         " but mlscan cannot inspect this format here, so its content is unknown. "
                         "Convert or unpack it and scan the result, or install the optional extra "
                         "that supports it.")


def analyzers_for(fmt: Format) -> list[Any]:
    """Analyzers for ``fmt``. One that cannot be imported comes back as ``(path, exception)``
    so the caller reports it for this artifact instead of aborting the whole scan."""
    loaded: list[Any] = []
    for dotted in analyzer_paths_for(fmt):
        try:
            loaded.append(load_analyzer(dotted))
        except Exception as exc:  # noqa: BLE001 - becomes a fail-closed finding
            loaded.append((dotted, exc))
    return loaded


def _scan_one(item: WorkItem, options: ScanOptions) -> ScanResult:
    ctx = ScanContext(load_catalogue(options.rule_dirs), options.limits,
                      options=dict(options.analyzer_options))
    return _FileScan(ctx).run(item)


class Scanner:
    """Scan files and directories. The library entry point behind ``mlscan scan``."""

    def __init__(self, options: ScanOptions | None = None) -> None:
        self.options = options or ScanOptions()
        self.rules = load_catalogue(self.options.rule_dirs)

    def scan(self, targets: Sequence[str | os.PathLike[str]],
             progress: Callable[[int, int, str], None] | None = None) -> ScanResult:
        """Scan ``targets``. ``progress(done, total, name)``, if given, is called after each
        top-level file (in the calling process, in order), e.g. to draw a progress bar."""
        result = ScanResult(targets=[str(t) for t in targets])
        items: list[WorkItem] = []
        for target in targets:
            items.extend(self._collect(Path(target), len(targets) > 1, result))
        for done, part in enumerate(self._run(items), 1):
            result.extend(part)
            if progress is not None:
                progress(done, len(items), items[done - 1].display)
        result.sort()
        return result

    def _run(self, items: list[WorkItem]) -> Iterable[ScanResult]:
        # A generator, so results (and progress) arrive as each file finishes.
        if self.options.jobs <= 1 or len(items) <= 1:
            yield from (_scan_one(item, self.options) for item in items)
            return
        from concurrent.futures import ProcessPoolExecutor  # multiprocessing costs ~20 ms to import

        chunk = max(1, len(items) // (self.options.jobs * 8))
        with ProcessPoolExecutor(max_workers=self.options.jobs) as pool:
            yield from pool.map(_scan_one, items, [self.options] * len(items), chunksize=chunk)

    def _collect(self, target: Path, prefixed: bool, result: ScanResult) -> Iterator[WorkItem]:
        location = Location(os.path.normpath(str(target)))
        try:
            st = target.stat()
        except OSError as exc:
            result.findings.append(self.rules.finding(
                "MLS-GEN-001", location, f"cannot access {target}: {exc.strerror or exc}"))
            return
        if stat.S_ISREG(st.st_mode):
            yield WorkItem(target, os.path.normpath(str(target)))
        elif stat.S_ISDIR(st.st_mode):
            prefix = os.path.normpath(str(target)) if prefixed else ""
            yield from self._walk_dir(target, target.resolve(), prefix, result)
        else:
            result.findings.append(self.rules.finding(
                "MLS-GEN-001", location, "not a regular file or directory; not scanned"))

    def _walk_dir(self, directory: Path, root: Path, prefix: str,
                  result: ScanResult) -> Iterator[WorkItem]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            rel = os.path.relpath(directory, root) if directory != root else "."
            result.findings.append(self.rules.finding(
                "MLS-GEN-001", Location(os.path.join(prefix, rel) if prefix else rel),
                f"cannot list directory: {exc.strerror or exc}"))
            return
        for entry in entries:
            path = Path(entry.path)
            display = os.path.join(prefix, os.path.relpath(path, root)) if prefix else \
                os.path.relpath(path.absolute(), root)
            try:
                if entry.is_symlink():
                    self._check_symlink(path, root, display, result)
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIPPED_DIRS:
                        yield from self._walk_dir(path, root, prefix, result)
                elif entry.is_file(follow_symlinks=False):
                    yield WorkItem(path, display)
                else:
                    result.findings.append(self.rules.finding(
                        "MLS-GEN-001", Location(display),
                        "special file (FIFO, socket or device) in the model tree; not read"))
            except OSError as exc:
                result.findings.append(self.rules.finding(
                    "MLS-GEN-001", Location(display), f"cannot stat: {exc.strerror or exc}"))

    def _check_symlink(self, path: Path, root: Path, display: str, result: ScanResult) -> None:
        """Symlinks are not followed; one that leaves the tree is a finding."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:
            resolved = None
            detail = f"cannot be resolved ({exc})"
        else:
            detail = f"points to {resolved}"
        if resolved is None or not resolved.is_relative_to(root):
            result.findings.append(self.rules.finding(
                "MLS-GEN-011", Location(display),
                f"symlink {detail}, outside the scanned tree; a loader following it reads a file "
                "nobody scanned"))
