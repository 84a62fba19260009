"""``mlscan keygen``: create a signing key pair for ``mlscan manifest sign``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from scanner.cli.common import InputError
from scanner.integrity.keys import DEFAULT_KEY_TYPE, KEY_TYPES, PASSPHRASE_ENV, KeyFileError


@click.command()
@click.option("--out", "prefix", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write PREFIX.key (private, mode 0600) and PREFIX.pub (public).")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), default=DEFAULT_KEY_TYPE,
              show_default=True,
              help="ECDSA keys are what OpenSSF model signing (OMS) accepts; ed25519 is an mlscan "
                   "extension that model-signing cannot verify.")
@click.option("--passphrase", "ask_passphrase", is_flag=True,
              help=f"Encrypt the private key; prompts for the passphrase (or set {PASSPHRASE_ENV}).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keygen(prefix: Path, key_type: str, ask_passphrase: bool, force: bool) -> None:
    """Create a key pair for signing models.

    \b
    Examples:
      mlscan keygen --out publisher               # publisher.key + publisher.pub (ECDSA P-256)
      mlscan keygen --out release --type ecdsa-p384 --passphrase
    Give the .pub file to whoever verifies your models; keep the .key secret.
    """
    from scanner.integrity.keys import generate, key_hint, write_keypair

    passphrase = None
    if ask_passphrase:
        passphrase = (os.environ.get(PASSPHRASE_ENV) or click.prompt(
            "Passphrase", hide_input=True, confirmation_prompt=True)).encode()
    try:
        key = generate(key_type)
        private_path, public_path = write_keypair(prefix, key, passphrase, overwrite=force)
    except (KeyFileError, OSError) as exc:
        raise InputError(str(exc)) from None
    click.echo(f"private key: {private_path} ({key_type}{', encrypted' if passphrase else ''}; keep it secret)")
    click.echo(f"public key:  {public_path} (hint {key_hint(key.public_key())[:16]}...)")
