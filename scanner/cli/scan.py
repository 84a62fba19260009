"""``mlscan scan``: analyze files and directories and report findings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from scanner import __version__
from scanner.cli.common import SEVERITY_CHOICES, SeverityType, write_output
from scanner.core.finding import Severity
from scanner.engine import Scanner, ScanOptions
from scanner.report import REPORTERS, get_reporter
from scanner.report.interface import ReportContext


def exit_code_for(result_failing: int) -> int:
    return 1 if result_failing else 0


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to FILE instead of standard output.")
@click.option("--fail-on", type=SeverityType(), default="high", show_default=True,
              help=f"Exit 1 when any finding is at or above this severity ({', '.join(SEVERITY_CHOICES)}).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files scanned in parallel (processes).")
@click.option("--rules-dir", "rule_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extra directory of rule files (*.toml) to load with the shipped rules.")
@click.option("-v", "--verbose", count=True, help="Also show info findings.")
def scan(targets: tuple[str, ...], fmt: str, output: str | None, fail_on: Severity, jobs: int,
         rule_dirs: tuple[Path, ...], verbose: int) -> None:
    """Scan model files, directories and archives without loading them.

    Formats are detected from content, archives are walked recursively, and every pickle is
    analyzed opcode by opcode. Anything that cannot be fully analyzed is reported (fail closed).

    \b
    Examples:
      mlscan scan model.pt
      mlscan scan ./downloaded-models/ --format json --output report.json --jobs 2
      mlscan scan checkpoint.ckpt --fail-on medium

    Exit status: 0 no finding at or above --fail-on, 1 findings at or above it, 2 usage error.
    """
    for target in targets:
        if "://" in target:
            raise click.BadParameter(
                f"{target!r}: remote sources are not supported by this build; download the "
                "file and scan the local copy.", param_hint="PATH")
        if not os.path.lexists(target):
            raise click.BadParameter(f"{target!r} does not exist.", param_hint="PATH")
    scanner = Scanner(ScanOptions(jobs=jobs, rule_dirs=tuple(rule_dirs)))
    result = scanner.scan(list(targets))
    code = exit_code_for(len(result.failing(fail_on)))
    color = fmt == "text" and output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    ctx = ReportContext(fail_on=fail_on, exit_code=code, rules=scanner.rules,
                        tool_version=__version__, color=color, verbosity=verbose)
    write_output(get_reporter(fmt).render(result, ctx), output)
    sys.exit(code)
