"""Pieces of the fetch machinery that need no server: reference parsing, path safety,
retry timing, size parsing, promotion, and lazy imports."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import click
import pytest

from scanner.cli.fetch import SizeType
from scanner.integrity.interface import Strength
from scanner.sources.hf import HfReference
from scanner.sources.http import HttpOptions, parse_retry_after, redact
from scanner.sources.interface import FetchError, ReferenceError, Selection, source_for
from scanner.sources.quarantine import Quarantine, unsafe_path_reason
from scanner.sources.transfer import Retries, RetryableStatus
from scanner.sources.url import name_prefix

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("reference, expected", [
    ("hf://openai-community/gpt2", ("model", "openai-community/gpt2", "main", "")),
    ("hf://openai-community/gpt2@v1.0", ("model", "openai-community/gpt2", "v1.0", "")),
    ("hf://acme/m@" + "c" * 40 + "/onnx/model.onnx",
     ("model", "acme/m", "c" * 40, "onnx/model.onnx")),
    ("hf://acme/m@refs/pr/12/config.json", ("model", "acme/m", "refs/pr/12", "config.json")),
    ("hf://acme/m@refs%2Fpr%2F12", ("model", "acme/m", "refs/pr/12", "")),
    ("hf://acme/m/sub/dir/", ("model", "acme/m", "main", "sub/dir")),
    ("hf://datasets/acme/corpus@main/data", ("dataset", "acme/corpus", "main", "data")),
])
def test_hf_references_parse(reference, expected):
    ref = HfReference.parse(reference)
    assert (ref.repo_type, ref.repo_id, ref.revision, ref.path) == expected


@pytest.mark.parametrize("reference", [
    "hf://gpt2", "hf://acme/", "hf://acme/m@", "hf://acme/m@a..b", "hf://../m", "hf://acme/m/../../etc",
    "hf://acme/m@main/a//b", "hf://ac me/m",
])
def test_bad_hf_references_are_refused(reference):
    with pytest.raises(ReferenceError):
        HfReference.parse(reference)


def test_pinned_reference_keeps_type_and_path():
    ref = HfReference.parse("hf://datasets/acme/corpus@main/data")
    assert ref.pinned("f" * 40) == f"hf://datasets/acme/corpus@{'f' * 40}/data"


def test_unknown_schemes_are_refused():
    with pytest.raises(ReferenceError, match="unsupported source scheme 'ftp'"):
        source_for("ftp://example.org/model.bin")
    with pytest.raises(ReferenceError, match="credentials in the URL"):
        source_for("https://user:pw@example.org/m.bin").resolve(None, Selection())  # type: ignore[arg-type]


@pytest.mark.parametrize("path, safe", [
    ("model.safetensors", True), ("onnx/model.onnx", True), ("a/.hidden", True),
    ("../x", False), ("a/../../x", False), ("/etc/passwd", False), ("C:/x", False), ("a\\b", False),
    ("a//b", False), ("./a", False), ("nul.txt", False), ("a/CON", False), ("a\x00b", False),
    ("a\nb", False), ("", False), ("x" * 256, False),
])
def test_unsafe_paths(path, safe):
    assert (unsafe_path_reason(path) is None) is safe


def test_torch_hub_prefixes():
    digest = name_prefix("resnet18-f37072fd.pth")
    assert digest is not None and digest.value == "f37072fd" and digest.strength is Strength.PARTIAL
    assert digest.matches("f37072fd" + "0" * 56) and not digest.matches("0" * 64)
    assert name_prefix("x-.pth") is None            # torch.hub's empty prefix always "passes"
    assert name_prefix("vgg-1234abc.pth") is None    # fewer than 8 hex digits
    assert name_prefix("model-20240101.pt") is None  # a date, not a hash
    assert name_prefix("efficientnet_b0_rwightman-7f5810bc.pth").value == "7f5810bc"  # type: ignore[union-attr]


def test_selection_patterns_follow_huggingface_hub():
    selection = Selection(include=("*.safetensors", "config.json", "onnx/"), exclude=("*fp16*",))
    assert selection.wants("model.safetensors") and selection.wants("sub/model.safetensors")
    assert selection.wants("config.json") and not selection.wants("sub/config.json")
    assert selection.wants("onnx/model.onnx") and not selection.wants("model.fp16.safetensors")
    assert Selection().wants("anything/at/all")


def test_redact_drops_credentials_query_and_fragment():
    assert redact("https://u:p@cdn.example:8443/x/y.bin?X-Amz-Signature=s#f") == "https://cdn.example:8443/x/y.bin"


def test_retry_after_seconds_and_dates():
    assert parse_retry_after("7") == 7.0
    later = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 25 <= later <= 31
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_doubles_resets_on_progress_and_honours_retry_after():
    slept: list[float] = []
    retries = Retries(HttpOptions(backoff=1.0, backoff_max=5.0, retries=5), slept.append, "https://h/x")
    error = ConnectionError("reset")
    for _ in range(4):
        retries.failed(error, progressed=False)
    retries.failed(error, progressed=True)
    retries.failed(RetryableStatus("https://h/x", 429, "Too Many Requests", 3.0), progressed=False)
    assert slept == [1.0, 2.0, 4.0, 5.0, 1.0, 3.0]
    for _ in range(3):  # failures since the last progress: 3, 4, 5 (the budget)
        retries.failed(error, progressed=False)
    assert slept[-3:] == [4.0, 5.0, 5.0]
    with pytest.raises(FetchError, match=r"connection failed .*\(10 attempts\)"):
        retries.failed(error, progressed=False)


def test_http_options_from_environment(monkeypatch):
    options = HttpOptions.from_env({"MLSCAN_HTTP_TIMEOUT": "2.5", "MLSCAN_HTTP_RETRIES": "1"}, retries=4)
    assert (options.connect_timeout, options.read_timeout, options.retries) == (2.5, 2.5, 4)
    with pytest.raises(FetchError, match="MLSCAN_HTTP"):
        HttpOptions.from_env({"MLSCAN_HTTP_RETRIES": "many"})


@pytest.mark.parametrize("text, value", [("1048576", 1 << 20), ("1M", 1 << 20), ("1MiB", 1 << 20),
                                         ("2GB", 2_000_000_000), ("1.5G", 3 << 29), ("10k", 10240)])
def test_sizes(text, value):
    assert SizeType().convert(text, None, None) == value


def test_bad_size():
    with pytest.raises(click.BadParameter):
        SizeType().convert("lots", None, None)


def test_promotion_is_all_checked_before_any_rename(tmp_path):
    dest = tmp_path / "dest"
    (dest / "ok").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dest / "linked").symlink_to(elsewhere)
    quarantine = Quarantine.beside(dest)
    assert quarantine.root.parent == tmp_path and oct(quarantine.root.stat().st_mode & 0o777) == "0o700"
    for rel in ("ok/a.bin", "linked/b.bin"):
        quarantine.path_for(rel).write_bytes(b"x")
    with pytest.raises(FetchError, match="symlink"):
        quarantine.promote(["ok/a.bin", "linked/b.bin"])
    assert not (dest / "ok" / "a.bin").exists() and list(elsewhere.iterdir()) == []
    assert quarantine.promote(["ok/a.bin"]) == [dest / "ok" / "a.bin"]
    quarantine.discard()
    assert not quarantine.root.exists()


def test_promotion_across_filesystems_still_renames_atomically(tmp_path, monkeypatch):
    quarantine = Quarantine.beside(tmp_path / "dest")
    quarantine.path_for("m/w.bin").write_bytes(b"weights")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    [landed] = quarantine.promote(["m/w.bin"])
    assert landed.read_bytes() == b"weights" and not (quarantine.root / "m" / "w.bin").exists()
    assert calls[1][0].startswith(".w.bin.") and calls[1][1] == "w.bin"
    assert [p.name for p in landed.parent.iterdir()] == ["w.bin"]


def test_dest_that_is_a_file_is_an_input_error(run_cli, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = run_cli("fetch", "https://127.0.0.1:9/m.bin", "--dest", target)
    assert result.exit_code == 2


def test_sources_and_cli_do_not_import_requests_at_start_up():
    code = ("import sys, scanner.cli, scanner.cli.fetch, scanner.sources.fetch, scanner.sources.hf, "
            "scanner.sources.url, scanner.sources.remote, scanner.sources.http; "
            "sys.exit('requests' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_progress_bar_draws_only_on_a_terminal_and_erases_itself():
    import io

    from scanner.sources.progress import ByteProgress, byte_progress

    assert not byte_progress(stream=io.StringIO()).enabled  # not a terminal: no bar
    stream = io.StringIO()
    bar = ByteProgress(stream, enabled=True, interval=0.0)
    bar.start("model\x1b[2J.safetensors")
    bar(512 << 10, 1 << 20)
    drawn = stream.getvalue()
    assert "[##########..........] 512.0 KiB/1.0 MiB" in drawn and "\x1b" not in drawn
    bar.done()
    assert stream.getvalue().endswith("\r") and bar.drawn == 0
