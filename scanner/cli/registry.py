"""``mlscan registry``: the trusted manifest registry (local SQLite state, signed publishing)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from scanner.registry.interface import RegistryError, parse_ref
from scanner.registry.store import REGISTRY_ENV, Registry

_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def registry_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
                        envvar=REGISTRY_ENV, default=None,
                        help=f"Registry file (default: $XDG_DATA_HOME/mlscan/registry.db; env {REGISTRY_ENV}).")(func)


@contextmanager
def opened(path: Path | None) -> Iterator[Registry]:
    from scanner.registry.store import open_registry

    registry = _guard(lambda: open_registry(path))
    try:
        yield registry
    finally:
        registry.close()


def _guard(action: Callable[[], Any]) -> Any:
    """Run ``action``; a RegistryError becomes a one-line message with its exit code."""
    try:
        return action()
    except RegistryError as exc:
        click.echo(f"mlscan registry: {exc}", err=True)
        sys.exit(exc.exit_code)


@click.group()
def registry() -> None:
    """Keep the models you trust, the keys trusted to sign them, and known-bad digests.

    `mlscan scan` consults the registry automatically when it exists.

    \b
    Examples:
      mlscan registry init
      mlscan registry trust-key publisher.pub --name acme-ml
      mlscan registry add ./resnet50/ --signature resnet50.sig --name acme/resnet50 --version 1.0
      mlscan registry deny <sha256> --reason "malicious checkpoint, advisory X"
      mlscan registry publish ./site/ --key root1.key --key root2.key --threshold 2
      mlscan registry sync https://models.example.com/registry/ --root 1.root.json
    """


@registry.command()
@registry_option
def init(registry_path: Path | None) -> None:
    """Create the registry file (or check an existing one)."""
    from scanner.registry.store import init_registry

    reg, created = _guard(lambda: init_registry(registry_path))
    click.echo(f"{'created' if created else 'already exists:'} {reg.path}")
    reg.close()


@registry.command("trust-key")
@click.argument("public_key", type=_file)
@click.option("--name", required=True, help="A name for the key (e.g. the publisher).")
@registry_option
def trust_key(public_key: Path, name: str, registry_path: Path | None) -> None:
    """Trust PUBLIC_KEY to sign models added to the registry."""
    from scanner.registry.operations import trust_key as run

    with opened(registry_path) as reg:
        record = _guard(lambda: run(reg, public_key, name))
    click.echo(f"trusted key {record.name}: {record.algorithm}, id {record.key_id[:16]}")


@registry.command("revoke-key")
@click.argument("name")
@click.option("--reason", required=True, help="Why (shown wherever the key's models are matched).")
@registry_option
def revoke_key(name: str, reason: str, registry_path: Path | None) -> None:
    """Revoke a key: models it signed are untrusted from now on."""
    from scanner.registry.operations import revoke_key as run

    with opened(registry_path) as reg:
        record = _guard(lambda: run(reg, name, reason))
    click.echo(f"revoked key {record.name} at {record.revoked_at}")


@registry.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--signature", type=_file, default=None, help="OMS bundle (default: MODEL/model.sig).")
@click.option("--name", required=True, help="Model name, e.g. acme/resnet50.")
@click.option("--version", "version", required=True, help="Model version, e.g. 1.0.")
@click.option("--source", default="", help="Where it came from, e.g. hf://acme/resnet50@<commit>.")
@click.option("--allow-unsigned", is_flag=True,
              help="Register without a signature (recorded; matches are reported at medium).")
@registry_option
def add(model: Path, signature: Path | None, name: str, version: str, source: str,
        allow_unsigned: bool, registry_path: Path | None) -> None:
    """Verify MODEL against a trusted key and register it."""
    from scanner.registry.operations import add as run

    with opened(registry_path) as reg:
        record, notes = _guard(lambda: run(reg, model, name, version, source, signature, allow_unsigned))
    how = f"signed by {record.signed_by[:16]}" if record.signed_by else "UNSIGNED (--allow-unsigned)"
    click.echo(f"added {record.ref}: {len(record.files)} file(s), {how}, "
               f"root digest sha256:{record.root_digest}")
    for note in notes:
        click.echo(f"  note: {note}")


@registry.command()
@click.argument("ref")
@registry_option
def remove(ref: str, registry_path: Path | None) -> None:
    """Remove NAME@VERSION."""
    from scanner.registry.operations import remove as run

    name, version = _guard(lambda: parse_ref(ref))
    with opened(registry_path) as reg:
        _guard(lambda: run(reg, name, version))
    click.echo(f"removed {ref}")


@registry.command()
@click.argument("sha256")
@click.option("--reason", required=True, help="Why the digest is bad (shown in scan findings).")
@registry_option
def deny(sha256: str, reason: str, registry_path: Path | None) -> None:
    """Add a known-bad file digest: any scan that meets it reports it as critical."""
    from scanner.registry.operations import deny as run

    with opened(registry_path) as reg:
        _guard(lambda: run(reg, sha256, reason))
    click.echo(f"denied {sha256}")


@registry.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@registry_option
def list_(fmt: str, registry_path: Path | None) -> None:
    """List models, keys and denied digests, with where each came from."""
    with opened(registry_path) as reg:
        models, keys, denied = reg.models(), reg.keys(), reg.denied()
    revoked = {k.key_id for k in keys if k.revoked}
    if fmt == "json":
        click.echo(json.dumps({
            "models": [{"ref": m.ref, "root_digest": m.root_digest, "source": m.source,
                        "trust": m.trust_label, "signed_by": m.signed_by,
                        "signer_revoked": m.signed_by in revoked, "files": len(m.files)} for m in models],
            "keys": [{"name": k.name, "key_id": k.key_id, "algorithm": k.algorithm,
                      "origin": k.origin, "revoked_at": k.revoked_at, "reason": k.revoke_reason}
                     for k in keys],
            "known_bad": [{"sha256": d.sha256, "reason": d.reason, "origin": d.origin} for d in denied],
        }, indent=2))
        return
    click.echo(f"Models ({len(models)}):")
    for m in models:
        status = "UNTRUSTED: signer revoked" if m.signed_by in revoked else \
            ("unsigned" if m.signed_by is None else "signed")
        click.echo(f"  {m.ref:<32} {len(m.files):>4} file(s)  {status}; {m.trust_label}")
    click.echo(f"Keys ({len(keys)}):")
    for k in keys:
        state = f"REVOKED {k.revoked_at}: {k.revoke_reason}" if k.revoked else "trusted"
        click.echo(f"  {k.name:<20} {k.key_id[:16]}  {k.algorithm}  {state}; {k.origin}")
    click.echo(f"Known-bad digests ({len(denied)}):")
    for d in denied:
        click.echo(f"  {d.sha256}  {d.reason}; {d.origin}")


@registry.command()
@click.argument("ref")
@registry_option
def show(ref: str, registry_path: Path | None) -> None:
    """Show NAME@VERSION: trust, source, and every file digest."""
    name, version = _guard(lambda: parse_ref(ref))
    with opened(registry_path) as reg:
        model = reg.model(name, version)
        signer = reg.key(model.signed_by) if model and model.signed_by else None
    if model is None:
        click.echo(f"mlscan registry: {ref} is not registered", err=True)
        sys.exit(2)
    click.echo(f"{model.ref}  ({model.trust_label}, added {model.added_at})")
    click.echo(f"  source:      {model.source or '-'}")
    click.echo(f"  root digest: sha256:{model.root_digest}")
    if signer is None:
        click.echo("  signed by:   nobody (registered with --allow-unsigned)")
    else:
        revoked = f"  REVOKED {signer.revoked_at}: {signer.revoke_reason}" if signer.revoked else ""
        click.echo(f"  signed by:   {signer.name} ({signer.key_id[:16]}){revoked}")
    for f in model.files:
        click.echo(f"  {f.algorithm}:{f.digest}  {f.path}" + (f"  {f.size} B" if f.size is not None else ""))


@registry.command()
@click.argument("site", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "key_paths", multiple=True, required=True, type=_file,
              help="Private key(s) signing the root and index (repeat for k-of-n).")
@click.option("--root-key", "root_key_paths", multiple=True, type=_file,
              help="Public keys of the root (default: the --key keys); changing them publishes "
                   "a new root version, which needs the old root keys among --key too.")
@click.option("--threshold", type=click.IntRange(min=1), default=None,
              help="Signatures required on root and index (default: all root keys).")
@click.option("--expires-days", type=float, default=7.0, show_default=True,
              help="Index lifetime; clients refuse an expired index (freeze protection).")
@registry_option
def publish(site: Path, key_paths: tuple[Path, ...], root_key_paths: tuple[Path, ...],
            threshold: int | None, expires_days: float, registry_path: Path | None) -> None:
    """Write the registry as a signed static directory for any HTTPS host or bucket."""
    from scanner.integrity.keys import KeyFileError, load_private_key, load_public_key
    from scanner.registry.publish import publish as run

    try:
        signers = [load_private_key(p) for p in key_paths]
        root_keys = [load_public_key(p) for p in root_key_paths]
    except KeyFileError as exc:
        click.echo(f"mlscan registry: {exc}", err=True)
        sys.exit(2)
    with opened(registry_path) as reg:
        summary = _guard(lambda: run(reg, site, signers, root_keys, threshold, expires_days))
    click.echo(f"published {site}: root v{summary['root_version']}, index v{summary['index_version']}, "
               f"{summary['models']} model(s), {summary['known_bad']} known-bad digest(s)")
    click.echo(f"clients pin {site / 'root' / '1.root.json'} (or a later root they trust) with --root")


@registry.command()
@click.argument("url")
@click.option("--root", "pinned_root", type=_file, default=None,
              help="Pinned root of trust (the publisher's 1.root.json, obtained out of band); "
                   "needed on the first sync from URL.")
@click.option("--allow-insecure-http", is_flag=True, help="Allow an http:// URL.")
@click.option("--ca-bundle", type=_file, default=None, help="Extra CA bundle for https.")
@registry_option
def sync(url: str, pinned_root: Path | None, allow_insecure_http: bool, ca_bundle: Path | None,
         registry_path: Path | None) -> None:
    """Pull a published registry, verify it end to end, and apply it atomically."""
    from scanner.registry.sync import sync as run

    with opened(registry_path) as reg:
        summary = _guard(lambda: run(reg, url, pinned_root, allow_insecure_http=allow_insecure_http,
                                     ca_bundle=str(ca_bundle) if ca_bundle else None))
    click.echo(f"synced {url}: root v{summary['root_version']}, index v{summary['index_version']}, "
               f"{summary['models']} model(s), {summary['known_bad']} known-bad digest(s), "
               f"{summary['revoked_keys']} revoked key(s)")
