"""``mlscan verify``: check a model against its signature or manifest."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from scanner import __version__
from scanner.cli.common import InputError, SeverityType, trust_options, write_output
from scanner.core.finding import Severity
from scanner.core.result import ScanResult
from scanner.report import REPORTERS, get_reporter
from scanner.report.interface import ReportContext


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@trust_options
@click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to FILE instead of standard output.")
@click.option("--fail-on", type=SeverityType(), default=Severity.HIGH, show_default="high",
              help="Exit 1 when any finding is at or above this severity.")
@click.option("--no-cache", is_flag=True,
              help="Rehash every file (the digest cache is keyed on inode, size, mtime and ctime).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Files hashed in parallel (threads; default: up to 4).")
@click.option("-v", "--verbose", count=True, help="Also list info findings.")
@click.option("-q", "--quiet", is_flag=True, help="Only failing findings and the verdict.")
def verify(model: Path, signature: Path | None, manifest: Path | None, key_paths: tuple[Path, ...],
           root_paths: tuple[Path, ...], ignore_unsigned_files: bool, fmt: str,
           output: str | None, fail_on: Severity, no_cache: bool, jobs: int | None,
           verbose: int, quiet: bool) -> None:
    """Verify that MODEL (a file or directory) is exactly what its publisher signed or listed.

    Every file is hashed and compared with the manifest: mismatched, missing, unlisted (even
    empty), ignored-by-signer files and symlinks are findings. md5, sha1 and hash-prefix
    matches are reported as weak, never as verified.

    \b
    Examples:
      mlscan verify ./resnet50/ --signature resnet50.sig --key publisher.pub
      mlscan verify ./resnet50/ --manifest SHA256SUMS
      mlscan verify ./bvlc_alexnet/ --manifest readme.md          # Caffe zoo sha1 (weak)
      mlscan verify resnet18-f37072fd.pth                         # torch.hub name prefix (partial)
    Without --signature/--manifest, a model.sig or SHA256SUMS inside MODEL is used.

    Exit status: 0 every file matches (and the signature verifies when a key is given),
    1 findings at or above --fail-on, 2 unusable input (manifest, key).
    """
    result = run_verification(model, signature, manifest, key_paths, root_paths,
                              ignore_unsigned_files, use_cache=not no_cache, workers=jobs)
    code = 1 if result.failing(fail_on) else 0
    from scanner.core.rules import load_catalogue

    color = fmt == "text" and output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    ctx = ReportContext(fail_on=fail_on, exit_code=code, rules=load_catalogue(),
                        tool_version=__version__, color=color,
                        verbosity=-1 if quiet else verbose)
    write_output(get_reporter(fmt).render(result, ctx), output)
    sys.exit(code)


def run_verification(model: Path, signature: Path | None, manifest: Path | None,
                     key_paths: tuple[Path, ...], root_paths: tuple[Path, ...],
                     ignore_unsigned_files: bool, *, use_cache: bool = True,
                     workers: int | None = None, precomputed: dict[str, str] | None = None,
                     display_prefix: str = "") -> ScanResult:
    """Verify and return a ScanResult carrying the findings and ``metadata['integrity']``.
    Input problems raise InputError (exit 2)."""
    from scanner.core.rules import load_catalogue
    from scanner.integrity.cache import DigestCache
    from scanner.integrity.interface import ManifestError
    from scanner.integrity.keys import KeyFileError
    from scanner.integrity.session import TrustInputs, prepare
    from scanner.integrity.verify import verify as run

    try:
        trust = TrustInputs.load(key_paths, root_paths)
        request = prepare(model, signature=signature, manifest=manifest, trust=trust,
                          ignore_unsigned_files=ignore_unsigned_files,
                          display_prefix=display_prefix)
    except (ManifestError, KeyFileError) as exc:
        raise InputError(str(exc)) from None
    cache = DigestCache() if use_cache and precomputed is None else None
    try:
        verification, findings = run(request, load_catalogue(), precomputed=precomputed,
                                     cache=cache, workers=workers)
    finally:
        if cache is not None:
            cache.close()
    result = ScanResult(targets=[str(model)], findings=findings)
    result.metadata["integrity"] = verification.as_dict()
    result.sort()
    return result
