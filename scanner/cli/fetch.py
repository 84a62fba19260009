"""``mlscan fetch``: download a model so that only verified, scanned files reach ``--dest``."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scanner import __version__
from scanner.cli.common import SEVERITY_CHOICES, InputError, SeverityType, write_output
from scanner.core.finding import Severity
from scanner.report import REPORTERS, get_reporter
from scanner.report.interface import ReportContext

if TYPE_CHECKING:
    from scanner.sources.remote import RemoteTargets

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class SizeType(click.ParamType):
    """``1048576``, ``500M``/``500MiB`` (binary), ``2GB`` (decimal)."""

    name = "size"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a size (e.g. 1048576, 500M, 2GiB, 2GB)", param, ctx)
        number, unit, binary, byte = match.groups()
        power = " kmgt".index(unit.lower()) if unit else 0
        base = 1000 if (byte and not binary and unit) else 1024
        return int(float(number) * base ** power)


def _sha256(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _HEX64.match(value.strip()):
        raise click.BadParameter("expected the 64 hex digits of a sha256 digest")
    return value.strip().lower() if value else None


@click.command()
@click.argument("source", metavar="URL|hf://...")
@click.option("--dest", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory the files land in, only after they passed (created if needed).")
@click.option("--sha256", callback=_sha256, default=None, metavar="HEX",
              help="Expected sha256 of the file (from the publisher, over a channel you trust).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Expected digests: SHA256SUMS/BSD tags, an OMS bundle or `mlscan manifest "
                   "create` output, ONNX_HUB_MANIFEST.json, a Caffe readme.md, an HF tree listing, "
                   "a git-lfs pointer. Files are looked up by path, then by file name.")
@click.option("--include", multiple=True, metavar="PATTERN",
              help="Only repository files matching this glob (repeatable; `*` crosses `/`).")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Skip repository files matching this glob (repeatable).")
@click.option("--fail-on", type=SeverityType(), default=None,
              help=f"Block the files on scan findings at or above this severity "
                   f"({', '.join(SEVERITY_CHOICES)}; default: the config's, else high). A digest "
                   "or size mismatch always blocks.")
@click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to FILE instead of standard output.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate(s) (PEM) to trust, e.g. a private mirror's. TLS "
                   "verification itself cannot be turned off.")
@click.option("--allow-insecure-http", is_flag=True,
              help="Allow plain http:// URLs (reported as a finding). A redirect from https to "
                   "http is refused regardless.")
@click.option("--max-size", type=SizeType(), default=None,
              help="Refuse any file larger than this (e.g. 2GiB), announced or actual.")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=None,
              help="Connect and read timeout in seconds (default 10 s connect, 30 s read).")
@click.option("--retries", type=click.IntRange(0, 20), default=None,
              help="Retries after a network failure, with exponential backoff and Range "
                   "resume (default 3).")
@click.option("--keep-quarantine", is_flag=True,
              help="On failure, keep the downloaded files in the quarantine directory for "
                   "inspection instead of deleting them.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Files scanned in parallel (default: the config's jobs, else 1).")
@click.option("--rules-dir", "rule_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extra directory of rule files (*.toml).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read policy from this .mlscan.toml or pyproject.toml.")
@click.option("--no-config", is_flag=True, help="Ignore configuration files.")
@click.option("-v", "--verbose", count=True, help="Also show info findings and artifacts.")
@click.option("-q", "--quiet", is_flag=True, help="Only failing findings and the verdict; no progress bar.")
def fetch(source: str, dest: Path, sha256: str | None, manifest: Path | None,
          include: tuple[str, ...], exclude: tuple[str, ...], fail_on: Severity | None, fmt: str,
          output: str | None, ca_bundle: Path | None, allow_insecure_http: bool,
          max_size: int | None, timeout: float | None, retries: int | None,
          keep_quarantine: bool, jobs: int | None, rule_dirs: tuple[Path, ...],
          config_file: Path | None, no_config: bool, verbose: int, quiet: bool) -> None:
    """Download a model file or repository, verify and scan it in quarantine, and move it into
    --dest only if it passed. On any failure nothing is written to --dest.

    \b
    Where the expected digest comes from (all that apply are checked):
      --sha256 / --manifest      what the publisher told you
      hf://                      the Hub's tree listing at the pinned commit (LFS sha256,
                                 git blob sha1 for small files) -- every file is checked
      torch.hub file names       resnet18-f37072fd.pth: a sha256 prefix (partial only)
    No digest at all is a medium finding: the file lands, with advice to pin it.

    \b
    Examples:
      mlscan fetch https://download.pytorch.org/models/resnet18-f37072fd.pth --dest ./models/
      mlscan fetch hf://openai-community/gpt2@main --dest ./models/gpt2/ \\
          --include '*.safetensors' --include 'config.json'
      mlscan fetch hf://openai-community/gpt2@<40-hex commit> --dest ./models/gpt2/   # pinned
      mlscan fetch https://example.org/m.onnx --dest ./models/ --sha256 <64 hex>
      mlscan fetch https://example.org/m.onnx --dest ./models/ --manifest SHA256SUMS
      mlscan scan hf://owner/repo@<commit>       # scan in a temporary quarantine, keep nothing

    \b
    hf:// references: hf://[datasets/]owner/repo[@revision][/path]. The revision (default
    main) is pinned to a commit first and reported, so you can pin it. HF_TOKEN is sent to
    the Hub for private/gated repos (never printed); HF_ENDPOINT selects a mirror.

    Exit status: 0 files landed in --dest; 1 verification failed or findings at or above
    --fail-on (nothing landed); 2 network, usage or input error (nothing landed).
    """
    from scanner.core.rules import load_catalogue
    from scanner.engine import ScanOptions
    from scanner.integrity.interface import ManifestError
    from scanner.policy.apply import PolicyInputs
    from scanner.policy.cli import apply_policy, load_policy
    from scanner.sources.fetch import FetchRequest, staged_fetch
    from scanner.sources.http import HttpOptions
    from scanner.sources.interface import FetchError, Selection
    from scanner.sources.progress import byte_progress
    from scanner.sources.quarantine import Quarantine

    policy = load_policy(PolicyInputs(config_file, no_config, fail_on, jobs, None, None), rule_dirs)
    rules = load_catalogue(tuple(rule_dirs))
    try:
        http = HttpOptions.from_env(
            connect_timeout=timeout, read_timeout=timeout, retries=retries, ca_bundle=ca_bundle,
            allow_insecure_http=allow_insecure_http or None, max_size=max_size)
        request = FetchRequest(source, sha256, manifest, Selection(include, exclude), http)
        with staged_fetch(request, lambda: Quarantine.beside(dest),
                          ScanOptions(jobs=policy.jobs, rule_dirs=tuple(rule_dirs)),
                          keep_quarantine=keep_quarantine, progress=byte_progress(quiet)) as staged:
            result = staged.result
            outcome = apply_policy(policy, result, rules, quiet)
            failing = result.failing(policy.fail_on)
            if staged.integrity_ok and not failing:
                staged.promote()
                code, why = 0, ""
            else:
                code = 1
                rule_ids = ", ".join(sorted({f.rule_id for f in staged.integrity_problems()}))
                why = (f"verification failed ({rule_ids or 'reported before the policy hid it'})"
                       if not staged.integrity_ok else
                       f"{len(failing)} finding(s) at or above {policy.fail_on.label}")
                if keep_quarantine:
                    staged.info["quarantine"] = str(staged.quarantine.root)
            result.targets = [str(dest)]
            summary = _summary(staged.info, dest, why, quiet)
            color = fmt == "text" and output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
            ctx = ReportContext(fail_on=policy.fail_on, exit_code=code, rules=rules,
                                tool_version=__version__, color=color,
                                verbosity=-1 if quiet else verbose, config=outcome.config,
                                fingerprints=outcome.fingerprints)
            report = get_reporter(fmt).render(result, ctx)
            if fmt == "text":
                report = summary + report
            elif not quiet:
                click.echo(summary, nl=False, err=True)
            write_output(report, output)
    except (FetchError, ManifestError) as exc:
        raise InputError(f"{source}: {exc}" if source not in str(exc) else str(exc)) from None
    sys.exit(code)


def remote_targets(targets: Sequence[str], quiet: bool = False) -> RemoteTargets:
    """For ``mlscan scan``: URL/hf:// targets downloaded and verified into a temporary
    quarantine that lives as long as the running click command. ``annotate(result)`` on the
    return value adds the fetch findings and the resolved commits to the scan result."""
    from scanner.sources.interface import FetchError, is_remote
    from scanner.sources.remote import RemoteTargets, materialize

    if not any(is_remote(t) for t in targets):
        return RemoteTargets(tuple(targets))
    try:
        remote: RemoteTargets = click.get_current_context().with_resource(materialize(targets, quiet=quiet))
    except FetchError as exc:
        raise InputError(str(exc)) from None
    return remote


def _summary(fetched: dict[str, Any], dest: Path, why: str, quiet: bool) -> str:
    """What was fetched from where (and which commit to pin), per file, and where it went."""
    lines: list[str] = []
    shown_dest = _safe(str(dest))
    if not quiet:
        lines.append(f"Fetch: {_safe(fetched['source'])}")
        if fetched.get("commit"):
            lines.append(f"  commit: {fetched['commit']}  (pin it: {_safe(fetched['pinned'])})")
        for item in fetched.get("files") or []:
            # what failed for a failed file, what matched otherwise
            wanted = "match" if item["status"] not in ("mismatch", "size-mismatch") else "mismatch"
            algorithms = sorted({c["algorithm"] for c in item["checks"] if c.get("outcome") == wanted})
            lines.append(f"  {item['status']:<14} {','.join(algorithms) or '-':<14} "
                         f"{_safe(item['path'])}  ({item['size']} bytes"
                         + (f", resumed {item['resumed']}x" if item.get("resumed") else "") + ")")
    if fetched.get("promoted"):
        lines.append(f"Fetched {len(fetched.get('files') or [])} file(s) into {shown_dest}")
    else:
        kept = fetched.get("quarantine")
        lines.append(f"Nothing was written to {shown_dest}: {why}; "
                     + (f"the downloads are kept in {_safe(kept)}" if kept else "the quarantine was removed"))
    return "\n".join(lines) + "\n\n"


def _safe(text: str) -> str:
    """Names come from remote listings: neutralise terminal control characters."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
