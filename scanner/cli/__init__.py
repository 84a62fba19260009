"""Command-line interface. Thin: parse options, call the library, render, pick the exit code.

Subcommands are imported only when invoked, so ``mlscan --version`` stays fast.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage or environment
error (bad option, unreadable input, no network).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from scanner import __version__

# command name -> "module:attribute" (a click.Command)
COMMANDS: dict[str, str] = {
    "scan": "scanner.cli.scan:scan",
    "rules": "scanner.cli.rules:rules",
    "keygen": "scanner.cli.keygen:keygen",
    "manifest": "scanner.cli.manifest:manifest",
    "verify": "scanner.cli.verify:verify",
    "registry": "scanner.cli.registry:registry",
    "fetch": "scanner.cli.fetch:fetch",
}

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlscan")
def main() -> None:
    """mlscan: scan model files for code that runs on load, backdoors, parser exploits and
    tampering, without ever loading them.

    \b
    Quick start:
      mlscan scan model.pt                      # text report; exit 1 on high+ findings
      mlscan scan ./models --format json -o r.json --jobs 2
      mlscan verify ./model/ --signature model.sig --key publisher.pub
      mlscan registry list                      # trusted models, keys, known-bad digests
      mlscan rules                              # what each rule id means
    """
