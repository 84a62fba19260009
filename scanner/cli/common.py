"""Option types and helpers shared by subcommands."""

from __future__ import annotations

from pathlib import Path

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


_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def trust_options(func):  # type: ignore[no-untyped-def]
    """Options shared by ``verify`` and ``scan``: where the expected digests and trust come from."""
    for option in reversed([
        click.option("--signature", type=_file, default=None,
                     help="OMS signature bundle (model.sig) to verify the model against."),
        click.option("--manifest", type=_file, default=None,
                     help="Manifest to verify against: SHA256SUMS/BSD tags, Caffe readme.md, "
                          "ONNX_HUB_MANIFEST.json, HF tree listing, git-lfs pointer, Keras "
                          "file_hash JSON, `mlscan manifest create` output, or an OMS bundle."),
        click.option("--key", "key_paths", multiple=True, type=_file,
                     help="Trusted publisher public key (PEM); repeatable. Giving a key "
                          "requires a valid signature."),
        click.option("--cert-root", "root_paths", multiple=True, type=_file,
                     help="Trusted root certificate(s) (PEM) for certificate-signed bundles; "
                          "never a public CA bundle by default."),
        click.option("--ignore-unsigned-files", is_flag=True,
                     help="Do not report files that the manifest does not list."),
    ]):
        func = option(func)
    return func
