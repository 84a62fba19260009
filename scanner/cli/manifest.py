"""``mlscan manifest create|sign|show``: write and inspect model manifests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scanner.cli.common import InputError
from scanner.integrity.interface import ManifestError
from scanner.integrity.keys import KeyFileError

ALGORITHMS = ("sha256", "sha512", "blake2b")
_model_arg = click.argument("model", type=click.Path(exists=True, path_type=Path))
_ignore = click.option("--ignore", "ignore_paths", multiple=True, metavar="RELPATH",
                       help="Exclude this relative path (file or directory) from the manifest; "
                            "recorded in the manifest, and reported by verifiers.")
_algorithm = click.option("--algorithm", type=click.Choice(ALGORITHMS), default="sha256",
                          show_default=True, help="Digest algorithm for every file.")
_jobs = click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                     help="Files hashed in parallel (threads; default: up to 4).")


@click.group()
def manifest() -> None:
    """Create, sign and inspect model manifests (OpenSSF model signing format).

    \b
    Examples:
      mlscan manifest create ./resnet50/ -o resnet50.manifest.json
      mlscan manifest sign ./resnet50/ --key publisher.key -o resnet50.sig
      mlscan manifest show resnet50.sig
    """


@manifest.command()
@_model_arg
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of standard output.")
@click.option("--format", "fmt", type=click.Choice(["statement", "sha256sum"]), default="statement",
              show_default=True, help="statement: an unsigned OMS in-toto statement; sha256sum: "
                                      "a `sha256sum -c` compatible list.")
@_algorithm
@_ignore
@_jobs
def create(model: Path, output: Path | None, fmt: str, algorithm: str,
           ignore_paths: tuple[str, ...], jobs: int | None) -> None:
    """Hash every file of MODEL (a file or directory) into an unsigned manifest.

    An unsigned manifest proves nothing by itself: keep it somewhere attackers cannot write,
    or sign the model with `mlscan manifest sign`.
    """
    from scanner.integrity.session import create_statement, digest_tree

    exclude = [output] if output else []
    try:
        if fmt == "sha256sum":
            if algorithm != "sha256":
                raise click.BadParameter("the sha256sum format holds sha256 digests only",
                                         param_hint="--algorithm")
            files = digest_tree(model, algorithm, ignore_paths, exclude, jobs)
            text = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
        else:
            text = create_statement(model, algorithm, ignore_paths, exclude, jobs).decode() + "\n"
    except ManifestError as exc:
        raise InputError(str(exc)) from None
    _write(text, output)
    if output:
        root = json.loads(text)["subject"][0]["digest"]["sha256"] if fmt == "statement" else None
        click.echo(f"wrote {output}" + (f" (root digest sha256:{root})" if root else ""), err=True)


@manifest.command()
@_model_arg
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Private key from `mlscan keygen` (ECDSA P-256/P-384; Ed25519 is an mlscan extension).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Bundle path (default: MODEL/model.sig for a directory, MODEL.sig for a file).")
@click.option("--passphrase", "ask_passphrase", is_flag=True,
              help="Prompt for the key's passphrase (or set MLSCAN_KEY_PASSPHRASE).")
@_algorithm
@_ignore
@_jobs
def sign(model: Path, key_path: Path, output: Path | None, ask_passphrase: bool, algorithm: str,
         ignore_paths: tuple[str, ...], jobs: int | None) -> None:
    """Sign MODEL into an OpenSSF model-signing (OMS) bundle.

    The bundle (Sigstore bundle v0.3 with a DSSE envelope over an in-toto statement) lists
    every file with its digest; `mlscan verify` and `model_signing verify key` both check it.
    """
    from scanner.integrity.keys import load_private_key
    from scanner.integrity.session import DEFAULT_SIGNATURE_NAME, sign_model

    if output is None:
        output = model / DEFAULT_SIGNATURE_NAME if model.is_dir() else \
            model.with_name(model.name + ".sig")
    passphrase = click.prompt("Passphrase", hide_input=True).encode() if ask_passphrase else None
    try:
        key = load_private_key(key_path, passphrase)
        bundle = sign_model(model, key, output, algorithm, ignore_paths, jobs)
    except (ManifestError, KeyFileError, OSError) as exc:
        raise InputError(str(exc)) from None
    from scanner.integrity.oms import parse_bundle

    parsed = parse_bundle(bundle, str(output))
    count = len(parsed.manifest.entries) if parsed.manifest else 0
    root = parsed.manifest.root_digest if parsed.manifest else ""
    click.echo(f"signed {count} file(s) of {model} -> {output} (root digest sha256:{root})")


@manifest.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(file: Path) -> None:
    """Print what a manifest or signature bundle lists (no verification)."""
    from scanner.integrity.manifests import load_manifest, read_bundle

    try:
        loaded = load_manifest(file)
    except ManifestError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"{file}: {loaded.kind} manifest, {len(loaded.entries)} entr(ies)"
               + ("" if loaded.complete else " (partial: vouches only for what it lists)"))
    if loaded.kind == "oms":
        parsed = read_bundle(file)
        click.echo(f"signature: {parsed.method}" + (f", key hint {parsed.key_hint}" if parsed.key_hint else ""))
    if loaded.root_digest:
        click.echo(f"root digest: sha256:{loaded.root_digest}")
    if loaded.ignore_paths:
        click.echo(f"ignore paths: {', '.join(sorted(loaded.ignore_paths))}")
    for entry in loaded.entries:
        size = f"  {entry.size} B" if entry.size is not None else ""
        click.echo(f"  {entry.digest or '-'}  {entry.path}{size}")


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(str(output), hint=str(exc.strerror or exc)) from None
