"""Option types and helpers shared by subcommands."""

from __future__ import annotations

import click

from scanner.core.finding import Severity

SEVERITY_CHOICES = [s.label for s in sorted(Severity, reverse=True)]


class SeverityType(click.ParamType):
    name = "severity"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, Severity):
            return value
        try:
            return Severity.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def write_output(text: str, output: str | None) -> None:
    """Write a report to ``output`` (or stdout), with a clear error on failure."""
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise click.FileError(output, hint=f"cannot write the report: {exc.strerror or exc}") from None


class InputError(click.ClickException):
    """An unusable input (manifest, key, network source): one line, exit 2, never a verdict."""

    exit_code = 2
