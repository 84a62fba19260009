"""registry publish / sync over a real HTTP server on 127.0.0.1, with the TUF-style attacks:
rollback, freeze, too few signatures, root rotation, tampered bundles, revoked keys."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integrity_helpers import cli, ids, keypair, make_model


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serves ``tmp_path/served`` over HTTP; tests copy a published site into it."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def publisher(tmp_path: Path) -> dict[str, Path]:
    """A team registry with one signed model, one denied digest, published to ``site``."""
    pub = tmp_path / "pub"
    pub.mkdir()
    reg = pub / "team.db"
    assert cli("registry", "init", "--registry", reg).exit_code == 0
    model = make_model(pub / "bert")
    private, public = keypair(pub, "acme")
    assert cli("manifest", "sign", model, "--key", private).exit_code == 0
    assert cli("registry", "trust-key", public, "--name", "acme", "--registry", reg).exit_code == 0
    assert cli("registry", "add", model, "--name", "acme/bert", "--version", "1.0",
               "--registry", reg).exit_code == 0
    assert cli("registry", "deny", "ab" * 32, "--reason", "advisory X", "--registry", reg).exit_code == 0
    root1, _ = keypair(pub, "root1")
    root2, _ = keypair(pub, "root2")
    site = pub / "site"
    result = cli("registry", "publish", site, "--key", root1, "--key", root2, "--threshold", "2",
                 "--registry", reg)
    assert result.exit_code == 0, result.output
    return {"reg": reg, "site": site, "model": model, "root1": root1, "root2": root2,
            "pinned": site / "root" / "1.root.json", "pub": pub}


def serve(site: Path, served: Path) -> None:
    shutil.rmtree(served)
    shutil.copytree(site, served)


def consumer(tmp_path: Path, name: str = "consumer.db") -> Path:
    reg = tmp_path / name
    assert cli("registry", "init", "--registry", reg).exit_code == 0
    return reg


def sync(url: str, reg: Path, *extra: object):  # type: ignore[no-untyped-def]
    return cli("registry", "sync", url, "--registry", reg, "--allow-insecure-http", *extra)


def test_sync_applies_a_published_registry(publisher, server, tmp_path: Path) -> None:
    url, served = server
    serve(publisher["site"], served)
    reg = consumer(tmp_path)
    result = sync(url, reg, "--root", publisher["pinned"])
    assert result.exit_code == 0, result.output
    assert "1 model(s), 1 known-bad" in result.output
    listing = json.loads(cli("registry", "list", "--format", "json", "--registry", reg).stdout)
    assert listing["models"][0]["ref"] == "acme/bert@1.0"
    assert listing["models"][0]["trust"] == f"synced from {url}"
    code, report = cli_scan(publisher["model"], reg)
    assert code == 0 and "synced from" in next(f["evidence"] for f in report["findings"]
                                               if f["rule_id"] == "MLS-REG-002")


def cli_scan(path: Path, reg: Path) -> tuple[int, dict]:
    result = cli("scan", "--format", "json", path, "--registry", reg)
    return result.exit_code, json.loads(result.stdout)


def test_first_sync_needs_a_pinned_root_and_http_needs_a_flag(publisher, server, tmp_path: Path) -> None:
    url, served = server
    serve(publisher["site"], served)
    reg = consumer(tmp_path)
    result = sync(url, reg)
    assert result.exit_code == 2 and "--root" in result.output
    result = cli("registry", "sync", url, "--registry", reg, "--root", publisher["pinned"])
    assert result.exit_code == 2 and "http" in result.output


def test_rollback_to_an_older_index_is_refused(publisher, server, tmp_path: Path) -> None:
    url, served = server
    old_site = tmp_path / "old-site"
    shutil.copytree(publisher["site"], old_site)
    result = cli("registry", "publish", publisher["site"], "--key", publisher["root1"], "--key",
                 publisher["root2"], "--threshold", "2", "--registry", publisher["reg"])
    assert result.exit_code == 0 and "index v2" in result.output
    reg = consumer(tmp_path)
    serve(publisher["site"], served)
    assert sync(url, reg, "--root", publisher["pinned"]).exit_code == 0
    serve(old_site, served)  # a mirror replays the older, validly signed index
    result = sync(url, reg)
    assert result.exit_code == 1 and "rollback" in result.output


def test_expired_index_is_refused(publisher, server, tmp_path: Path) -> None:
    url, served = server
    result = cli("registry", "publish", publisher["site"], "--key", publisher["root1"], "--key",
                 publisher["root2"], "--threshold", "2", "--expires-days", "-1",
                 "--registry", publisher["reg"])
    assert result.exit_code == 0
    serve(publisher["site"], served)
    result = sync(url, consumer(tmp_path), "--root", publisher["pinned"])
    assert result.exit_code == 1 and "expired" in result.output


def test_index_below_threshold_is_refused(publisher, server, tmp_path: Path) -> None:
    url, served = server
    index_path = publisher["site"] / "index.json"
    envelope = json.loads(index_path.read_text())
    envelope["signatures"] = envelope["signatures"][:1]  # k-of-n with k=2: one is not enough
    index_path.write_text(json.dumps(envelope))
    serve(publisher["site"], served)
    result = sync(url, consumer(tmp_path), "--root", publisher["pinned"])
    assert result.exit_code == 1 and "1 of the required 2" in result.output


def test_root_rotation(publisher, server, tmp_path: Path) -> None:
    url, served = server
    reg = consumer(tmp_path)
    serve(publisher["site"], served)
    assert sync(url, reg, "--root", publisher["pinned"]).exit_code == 0
    new_private, new_public = keypair(tmp_path, "root3")
    # rotate {root1, root2} -> {root3}: root 2 is signed by the old threshold and the new key
    result = cli("registry", "publish", publisher["site"], "--key", publisher["root1"], "--key",
                 publisher["root2"], "--key", new_private, "--root-key", new_public,
                 "--threshold", "1", "--registry", publisher["reg"])
    assert result.exit_code == 0, result.output
    assert (publisher["site"] / "root" / "2.root.json").is_file()
    serve(publisher["site"], served)
    result = sync(url, reg)
    assert result.exit_code == 0 and "root v2" in result.output
    # a root 3 signed only by a new key, without the current root's keys, is refused
    rogue_private, rogue_public = keypair(tmp_path, "rogue")
    result = cli("registry", "publish", publisher["site"], "--key", rogue_private,
                 "--root-key", rogue_public, "--registry", publisher["reg"])
    assert result.exit_code == 2 and "old root keys" in result.output  # the publisher tool refuses
    from scanner.integrity.keys import load_private_key, load_public_key
    from scanner.registry import metadata

    forged = metadata.root_payload(3, [load_public_key(rogue_public)], 1, metadata.expires_in(30))
    (served / "root" / "3.root.json").write_bytes(
        metadata.sign(metadata.ROOT_PAYLOAD_TYPE, forged, [load_private_key(rogue_private)]))
    result = sync(url, reg)
    assert result.exit_code == 1 and "root version 3" in result.output


def test_tampered_bundle_on_the_server_is_refused(publisher, server, tmp_path: Path) -> None:
    url, served = server
    serve(publisher["site"], served)
    bundle = served / "models" / "acme" / "bert" / "1.0" / "model.sig"
    bundle.write_text(bundle.read_text() + " ")  # one extra byte: still valid JSON, new digest
    result = sync(url, consumer(tmp_path), "--root", publisher["pinned"])
    assert result.exit_code == 1 and "sha256 differs" in result.output


def test_revoked_publisher_key_propagates(publisher, server, tmp_path: Path) -> None:
    url, served = server
    assert cli("registry", "revoke-key", "acme", "--reason", "key leaked",
               "--registry", publisher["reg"]).exit_code == 0
    assert cli("registry", "publish", publisher["site"], "--key", publisher["root1"], "--key",
               publisher["root2"], "--threshold", "2", "--registry", publisher["reg"]).exit_code == 0
    serve(publisher["site"], served)
    reg = consumer(tmp_path)
    assert sync(url, reg, "--root", publisher["pinned"]).exit_code == 0
    code, report = cli_scan(publisher["model"], reg)
    assert code == 1 and ids(report)["MLS-REG-004"] == "high"


def test_unreachable_source_is_exit_2(tmp_path: Path, publisher) -> None:
    reg = consumer(tmp_path)
    result = sync("http://127.0.0.1:9/", reg, "--root", publisher["pinned"])
    assert result.exit_code == 2 and "cannot reach" in result.output
