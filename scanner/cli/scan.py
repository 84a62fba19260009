"""``mlscan scan``: analyze files and directories and report findings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from scanner import __version__
from scanner.cli.common import SEVERITY_CHOICES, SeverityType, trust_options, write_output
from scanner.core.finding import Severity
from scanner.core.result import ScanResult
from scanner.engine import Scanner, ScanOptions
from scanner.policy.apply import PolicyInputs
from scanner.policy.cli import apply_policy, load_policy
from scanner.report import REPORTERS, get_reporter
from scanner.report.interface import ReportContext
from scanner.report.progress import progress_bar


def exit_code_for(result_failing: int) -> int:
    return 1 if result_failing else 0


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to FILE instead of standard output.")
@click.option("--fail-on", type=SeverityType(), default=None,
              help=f"Exit 1 when any finding is at or above this severity ({', '.join(SEVERITY_CHOICES)}; "
                   "default: the config's fail-on, else high).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Files scanned in parallel (processes; default: the config's jobs, else 1).")
@click.option("--rules-dir", "rule_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extra directory of rule files (*.toml) to load with the shipped rules.")
@click.option("-v", "--verbose", count=True, help="Also show info findings and artifacts (-vv: config).")
@click.option("-q", "--quiet", is_flag=True, help="Only failing findings and the verdict; no progress bar.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read policy from this .mlscan.toml or pyproject.toml instead of searching for one.")
@click.option("--no-config", is_flag=True, help="Ignore configuration files.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path),
              help="Report only findings whose fingerprint is not in this baseline file.")
@click.option("--write-baseline", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Record this scan's findings (by fingerprint) in FILE, to use with --baseline.")
@trust_options
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Registry to consult (default: the user's registry, if it exists; "
                                 "env MLSCAN_REGISTRY).")
@click.option("--no-registry", is_flag=True, help="Do not consult the registry.")
@click.option("--model", "model_ref", default=None, metavar="NAME@VERSION",
              help="The scanned model claims to be this registered model: every file must match.")
def scan(targets: tuple[str, ...], fmt: str, output: str | None, fail_on: Severity | None,
         jobs: int | None, rule_dirs: tuple[Path, ...], verbose: int, quiet: bool,
         config_file: Path | None, no_config: bool, baseline: Path | None,
         write_baseline: Path | None, signature: Path | None, manifest: Path | None,
         key_paths: tuple[Path, ...], root_paths: tuple[Path, ...],
         ignore_unsigned_files: bool, registry_path: Path | None, no_registry: bool,
         model_ref: str | None) -> None:
    """Scan model files, directories and archives without loading them.

    Formats are detected from content, archives are walked recursively, and every pickle is
    analyzed opcode by opcode. Anything that cannot be fully analyzed is reported (fail closed).

    \b
    Examples:
      mlscan scan model.pt
      mlscan scan ./downloaded-models/ --format json --output report.json --jobs 2
      mlscan scan checkpoint.ckpt --fail-on medium
      mlscan scan ./resnet50/ --signature resnet50.sig --key publisher.pub   # + integrity
      mlscan scan hf://owner/repo@<commit>      # download to a quarantine, verify, scan, clean up

    Exit status: 0 no finding at or above --fail-on, 1 findings at or above it, 2 usage error.
    """
    # URL/hf:// targets become verified local copies in a temporary quarantine, removed when
    # the command ends (scanner.sources.remote); local paths pass through unchanged.
    from scanner.cli.fetch import remote_targets

    remote = remote_targets(targets, quiet)
    targets = remote.paths
    for target in targets:
        if not os.path.lexists(target):
            raise click.BadParameter(f"{target!r} does not exist.", param_hint="PATH")
    integrity_wanted = bool(signature or manifest or key_paths or root_paths)
    if integrity_wanted and len(targets) != 1:
        raise click.BadParameter("--signature/--manifest/--key verify one model: give exactly one "
                                 "PATH", param_hint="PATH")
    policy = load_policy(PolicyInputs(config_file, no_config, fail_on, jobs, baseline, write_baseline),
                         rule_dirs)
    scanner = Scanner(ScanOptions(jobs=policy.jobs, rule_dirs=tuple(rule_dirs)))
    with progress_bar(quiet) as progress:
        result = scanner.scan(list(targets), progress=progress)
    remote.annotate(result)  # fetch findings (digest checks) and the resolved commit
    if not no_registry:
        _add_registry(result, scanner, targets, registry_path, model_ref)
    if integrity_wanted:
        _add_integrity(result, Path(targets[0]), signature, manifest, key_paths, root_paths,
                       ignore_unsigned_files)
    # Policy (config, suppressions, baseline) goes last: after every stage that adds findings.
    outcome = apply_policy(policy, result, scanner.rules, quiet)
    code = exit_code_for(len(result.failing(policy.fail_on)))
    color = fmt == "text" and output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    ctx = ReportContext(fail_on=policy.fail_on, exit_code=code, rules=scanner.rules,
                        tool_version=__version__, color=color, verbosity=-1 if quiet else verbose,
                        config=outcome.config, fingerprints=outcome.fingerprints)
    write_output(get_reporter(fmt).render(result, ctx), output)
    sys.exit(code)


def _add_integrity(result: ScanResult, target: Path, signature: Path | None,
                   manifest: Path | None, key_paths: tuple[Path, ...],
                   root_paths: tuple[Path, ...], ignore_unsigned_files: bool) -> None:
    """Verify the scanned model with the sha256 digests the scan computed over the very bytes
    it analyzed: one read per byte, and a file swapped mid-scan cannot pass with old digests."""
    from scanner.cli.verify import run_verification

    shown = os.path.normpath(str(target))
    precomputed = {(target.name if a.location == shown and target.is_file() else a.location): a.sha256
                   for a in result.artifacts if a.sha256}
    verified = run_verification(target, signature, manifest, key_paths, root_paths,
                                ignore_unsigned_files, precomputed=precomputed)
    result.findings.extend(verified.findings)
    result.metadata.update(verified.metadata)
    result.sort()


def _add_registry(result: ScanResult, scanner: Scanner, targets: tuple[str, ...],
                  registry_path: Path | None, model_ref: str | None) -> None:
    """Known-bad, known-good and claimed-model lookups when a registry exists."""
    from scanner.registry.interface import RegistryError, parse_ref
    from scanner.registry.store import REGISTRY_ENV, default_path, open_registry

    explicit = registry_path is not None or bool(os.environ.get(REGISTRY_ENV)) or model_ref
    path = registry_path or default_path()
    if not explicit and not path.is_file():
        return
    try:
        claim = parse_ref(model_ref) if model_ref else None
        if claim and len(targets) != 1:
            raise RegistryError("--model checks one model: give exactly one PATH")
        registry = open_registry(path)
    except RegistryError as exc:
        raise click.UsageError(str(exc)) from None
    from scanner.registry.lookup import lookup_findings

    try:
        result.findings.extend(lookup_findings(registry, result, scanner.rules,
                                               Path(targets[0]) if len(targets) == 1 else None, claim))
    except RegistryError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        registry.close()
    result.sort()
