"""``mlscan fetch hf://`` against an emulated Hugging Face Hub (HTTPS, throwaway CA, CDN on
another origin): commit pinning, tree verification, faults, credentials, end to end."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import pytest

from fixtures.builders.canary import CANARY_DIR, canary_command
from tests.conftest import SAMPLES
from tests.fetch_helpers import TOKEN, Hub, git_sha1, make_ca, serve, sha256, stop

SAFETENSORS = (SAMPLES / "benign" / "safetensors" / "model.safetensors").read_bytes()
CONFIG = b'{"model_type": "gpt2", "n_layer": 2}\n'
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def hub(tls, monkeypatch):
    """A Hub on https://127.0.0.1:<port>; its CDN answers as https://localhost:<port> (another
    origin, as a real CDN is), so credentials must not follow the redirect."""
    state = Hub()
    server, base = serve(state, tls=(tls[1], tls[2]))
    state.cdn_base = base.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("MLSCAN_HTTP_BACKOFF", "0.01")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    state.base = base  # type: ignore[attr-defined]
    state.ca = tls[0]  # type: ignore[attr-defined]
    yield state
    stop(server)


def gpt2_like(hub: Hub, **kwargs) -> str:
    return hub.add_repo("acme/tiny-gpt", {
        "model.safetensors": SAFETENSORS, "config.json": CONFIG,
        "tokenizer.json": b'{"version": "1.0"}', "README.md": b"# tiny\n",
        "onnx/model.onnx.data": b"\0" * 64}, lfs={"model.safetensors", "onnx/model.onnx.data"}, **kwargs)


def fetch(run_cli, hub, ref, dest, *extra):
    return run_cli("fetch", ref, "--dest", dest, "--ca-bundle", hub.ca, *extra)


def report(result) -> dict:
    return json.loads(result.stdout)


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if "mlscan-quarantine" in p.name]


def test_fetches_selected_files_verified_against_the_tree_at_one_commit(run_cli, hub, tmp_path):
    gpt2_like(hub)
    dest = tmp_path / "models" / "gpt2"
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt@main", dest, "--include", "*.safetensors",
                   "--include", "config.json", "--format", "json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors"]
    assert (dest / "model.safetensors").read_bytes() == SAFETENSORS
    fetched = report(result)["metadata"]["fetch"]
    assert fetched["commit"] == COMMIT_A and fetched["pinned"] == f"hf://acme/tiny-gpt@{COMMIT_A}"
    assert fetched["promoted"] is True
    status = {f["path"]: (f["status"], f["checks"][0]["algorithm"]) for f in fetched["files"]}
    assert status == {"config.json": ("weak-match", "git-sha1"), "model.safetensors": ("verified", "sha256")}
    rules = {f["rule_id"] for f in report(result)["findings"]}
    assert {"MLS-FET-009", "MLS-FET-007"} <= rules and "MLS-FET-001" not in rules
    # pinned before any file: every download names the commit, the tree was paginated
    resolves = [p for p, _ in hub.log if "/resolve/" in p]
    assert resolves and all(f"/resolve/{COMMIT_A}/" in p for p in resolves)
    assert any("cursor=" in p for p, _ in hub.requests_to("/api/models/acme/tiny-gpt/tree/"))
    assert leftovers(dest.parent) == []
    assert f"commit: {COMMIT_A}" in result.stderr  # json on stdout, the summary on stderr


def test_text_output_tells_the_user_which_commit_to_pin(run_cli, hub, tmp_path):
    gpt2_like(hub)
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "config.json")
    assert result.exit_code == 0, result.output
    assert f"commit: {COMMIT_A}" in result.stdout
    assert f"pin it: hf://acme/tiny-gpt@{COMMIT_A}" in result.stdout
    assert "Fetched 1 file(s)" in result.stdout


def test_branch_moving_mid_fetch_does_not_mix_commits(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.add_repo("acme/tiny-gpt", {"model.safetensors": b"other", "config.json": b"{}"},
                 commit=COMMIT_B, branch="next")

    def move(_path):  # someone pushes to main while we download
        hub.repos["acme/tiny-gpt"].refs["main"] = COMMIT_B

    hub.on_resolve = move
    dest = tmp_path / "d"
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt@main", dest, "--exclude", "onnx/*")
    assert result.exit_code == 0, result.output
    assert (dest / "model.safetensors").read_bytes() == SAFETENSORS
    assert (dest / "config.json").read_bytes() == CONFIG
    assert all(COMMIT_B not in p for p, _ in hub.log)


def test_wrong_bytes_from_the_cdn_never_land(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault(f"/cdn/{sha256(SAFETENSORS)}", "wrong", times=10)
    dest = tmp_path / "d"
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", dest, "--include", "*.safetensors",
                   "--include", "config.json", "--format", "json")
    assert result.exit_code == 1, result.output
    findings = report(result)["findings"]
    mismatch = [f for f in findings if f["rule_id"] == "MLS-FET-001"]
    assert mismatch and mismatch[0]["severity"] == "critical"
    assert sha256(SAFETENSORS) in mismatch[0]["evidence"] and "LFS sha256" in mismatch[0]["evidence"]
    assert not dest.exists()  # not even config.json, which verified
    assert leftovers(tmp_path) == []
    assert "Nothing was written" in result.stderr and "verification failed" in result.stderr


def test_bigger_file_than_listed_is_cut_off_and_never_lands(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault(f"/cdn/{sha256(SAFETENSORS)}", "wrong", times=10, arg=SAFETENSORS + b"\0" * 4096)
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "*.safetensors",
                   "--format", "json")
    assert result.exit_code == 1, result.output
    [size] = [f for f in report(result)["findings"] if f["rule_id"] == "MLS-FET-003"]
    assert size["severity"] == "high" and str(len(SAFETENSORS)) in size["evidence"]
    assert report(result)["metadata"]["fetch"]["files"][0]["status"] == "incomplete"
    assert not (tmp_path / "d").exists() and leftovers(tmp_path) == []


def test_keep_quarantine_keeps_the_evidence(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault(f"/cdn/{sha256(SAFETENSORS)}", "wrong", times=10)
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "*.safetensors",
                   "--keep-quarantine")
    assert result.exit_code == 1
    kept = leftovers(tmp_path)
    assert len(kept) == 1 and kept[0] in result.stdout
    assert (tmp_path / kept[0] / "model.safetensors").read_bytes() != SAFETENSORS
    assert not (tmp_path / "d").exists()


def test_connection_dropped_mid_body_resumes_with_range(run_cli, hub, tmp_path):
    gpt2_like(hub)
    blob = f"/cdn/{sha256(SAFETENSORS)}"
    hub.fault(blob, "drop")
    dest = tmp_path / "d"
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", dest, "--include", "*.safetensors", "--format", "json")
    assert result.exit_code == 0, result.output
    assert (dest / "model.safetensors").read_bytes() == SAFETENSORS
    ranges = [h.get("Range") for p, h in hub.requests_to(blob)]
    assert ranges == [None, f"bytes={len(SAFETENSORS) // 2}-"]
    assert report(result)["metadata"]["fetch"]["files"][0]["resumed"] == 1


def test_lfs_pointer_instead_of_content_is_a_finding(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault(f"/cdn/{sha256(SAFETENSORS)}", "pointer", times=10)
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "*.safetensors",
                   "--format", "json")
    assert result.exit_code == 1
    rules = {f["rule_id"] for f in report(result)["findings"]}
    assert {"MLS-FET-005", "MLS-FET-001", "MLS-FET-003"} <= rules
    assert not (tmp_path / "d").exists()


def test_private_repo_needs_hf_token_which_is_never_printed_nor_sent_to_the_cdn(run_cli, hub, tmp_path, monkeypatch):
    gpt2_like(hub, private=True)
    denied = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d")
    assert denied.exit_code == 2
    assert "401" in denied.output and "HF_TOKEN" in denied.output
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.log.clear()
    ok = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "*.safetensors", "-vv")
    assert ok.exit_code == 0, ok.output
    assert TOKEN not in ok.output
    api = [h for p, h in hub.log if p.startswith("/api/")]
    cdn = [h for p, h in hub.log if p.startswith("/cdn/")]
    assert api and all(h.get("Authorization") == f"Bearer {TOKEN}" for h in api)
    assert cdn and all("Authorization" not in h for h in cdn)
    assert all(h.get("Host", "").startswith("localhost") for h in cdn)
    # a failure with the token set does not print it either
    hub.fault(f"/cdn/{sha256(SAFETENSORS)}", "status", times=10, arg=(404, {}))
    failed = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "e", "--include", "*.safetensors")
    assert failed.exit_code == 2 and TOKEN not in failed.output
    assert "secret-sig" not in failed.output  # the CDN URL's signature is redacted too


def test_missing_repo_and_revision_say_what_is_wrong(run_cli, hub, tmp_path):
    gpt2_like(hub)
    missing = fetch(run_cli, hub, "hf://acme/nope", tmp_path / "d")
    assert missing.exit_code == 2 and "404" in missing.output and "not found" in missing.output
    revision = fetch(run_cli, hub, "hf://acme/tiny-gpt@v9", tmp_path / "d")
    assert revision.exit_code == 2 and "revision 'v9'" in revision.output
    path = fetch(run_cli, hub, "hf://acme/tiny-gpt@main/weights.bin", tmp_path / "d")
    assert path.exit_code == 2 and "'weights.bin' does not exist" in path.output
    assert not (tmp_path / "d").exists() and leftovers(tmp_path) == []


def test_429_waits_for_retry_after(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault("/api/models/acme/tiny-gpt/revision/main", "status", arg=(429, {"Retry-After": "1"}))
    started = time.monotonic()
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "config.json")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.9  # backoff is 0.01 s: the wait came from Retry-After
    assert len(hub.requests_to("/api/models/acme/tiny-gpt/revision/")) == 2


def test_429_with_a_long_retry_after_gives_up_with_a_clear_message(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault("/api/models/acme/tiny-gpt/revision/main", "status", arg=(429, {"Retry-After": "3600"}))
    started = time.monotonic()
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d")
    assert result.exit_code == 2
    assert "429" in result.output and "3600 s" in result.output and "Try again later" in result.output
    assert time.monotonic() - started < 5


def test_max_size_refuses_from_the_listing_before_downloading(run_cli, hub, tmp_path):
    gpt2_like(hub)
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--max-size", "100")
    assert result.exit_code == 2 and "--max-size 100" in result.output
    assert not [p for p, _ in hub.log if "/resolve/" in p]


def test_path_and_dataset_references(run_cli, hub, tmp_path):
    gpt2_like(hub)
    sub = fetch(run_cli, hub, "hf://acme/tiny-gpt@main/onnx", tmp_path / "a")
    assert sub.exit_code == 0, sub.output
    assert (tmp_path / "a" / "onnx" / "model.onnx.data").read_bytes() == b"\0" * 64
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["onnx"]
    one = fetch(run_cli, hub, f"hf://acme/tiny-gpt@{COMMIT_A}/config.json", tmp_path / "b")
    assert one.exit_code == 0, one.output
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["config.json"]
    hub.add_repo("acme/corpus", {"data/train.csv": b"a,b\n1,2\n", "data/.keep": b""}, kind="datasets")
    data = fetch(run_cli, hub, "hf://datasets/acme/corpus", tmp_path / "c")
    assert data.exit_code == 0, data.output
    assert (tmp_path / "c" / "data" / "train.csv").read_bytes() == b"a,b\n1,2\n"
    assert (tmp_path / "c" / "data" / ".keep").read_bytes() == b""  # empty files verify too
    assert any(p.startswith("/datasets/acme/corpus/resolve/") for p, _ in hub.log)


def test_unsafe_path_in_a_listing_is_critical_and_nothing_is_written(run_cli, hub, tmp_path):
    hub.add_repo("acme/evil", {"../escape.bin": b"x", "config.json": CONFIG})
    dest = tmp_path / "inner" / "d"
    result = fetch(run_cli, hub, "hf://acme/evil", dest, "--format", "json")
    assert result.exit_code == 1, result.output
    bad = [f for f in report(result)["findings"] if f["rule_id"] == "MLS-FET-008"]
    assert bad and bad[0]["severity"] == "critical"
    assert not dest.exists() and not (tmp_path / "inner" / "escape.bin").exists()
    assert not any("escape" in p for p, _ in hub.log if "/resolve/" in p)


def test_malicious_pickle_from_the_hub_never_lands_and_never_runs(run_cli, hub, tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, (canary_command("fetch_hf_e2e"),)

    weights = pickle.dumps(Payload(), protocol=2)
    hub.add_repo("acme/trojan", {"pytorch_model.bin": weights, "config.json": CONFIG},
                 lfs={"pytorch_model.bin"})
    # Only our own canary file: other test runs may share CANARY_DIR concurrently.
    canary = CANARY_DIR / "fetch_hf_e2e"
    CANARY_DIR.mkdir(exist_ok=True)
    canary.unlink(missing_ok=True)
    try:
        dest = tmp_path / "d"
        result = fetch(run_cli, hub, "hf://acme/trojan", dest, "--format", "json")
        assert result.exit_code == 1, result.output
        findings = report(result)["findings"]
        assert any(f["rule_id"].startswith("MLS-PKL-") and f["severity"] == "critical" for f in findings)
        assert any(f["rule_id"] == "MLS-FET-009" for f in findings)  # the bytes were the published ones
        assert not dest.exists() and leftovers(tmp_path) == []
        assert not canary.exists(), "the payload ran"
    finally:
        canary.unlink(missing_ok=True)


def test_scan_hf_reference_in_a_temporary_quarantine(run_cli, hub, tmp_path, monkeypatch):
    gpt2_like(hub)
    monkeypatch.setenv("MLSCAN_CA_BUNDLE", str(hub.ca))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = run_cli("scan", "hf://acme/tiny-gpt@main", "--format", "json")
    assert result.exit_code == 0, result.output
    scanned = {a["path"] for a in report(result)["artifacts"]}
    assert {"model.safetensors", "config.json", "onnx/model.onnx.data"} <= scanned
    assert f"is commit {COMMIT_A}" in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("mlscan-remote-")]


def test_scan_of_tampered_hf_file_is_refused(run_cli, hub, tmp_path, monkeypatch):
    gpt2_like(hub)
    monkeypatch.setenv("MLSCAN_CA_BUNDLE", str(hub.ca))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    hub.fault(f"/cdn/{sha256(SAFETENSORS)}", "wrong", times=10)
    result = run_cli("scan", "hf://acme/tiny-gpt")
    assert result.exit_code == 2
    assert "model.safetensors" in result.output and "does not match" in result.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("mlscan-remote-")]


def test_git_sha1_of_small_files_is_really_checked(run_cli, hub, tmp_path):
    gpt2_like(hub)
    hub.fault("/acme/tiny-gpt/resolve/" + COMMIT_A + "/config.json", "wrong", times=10,
              arg=b'{"model_type": "gpt2", "n_layer": 3}\n')  # same size, other bytes
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--include", "config.json",
                   "--format", "json")
    assert result.exit_code == 1
    [bad] = [f for f in report(result)["findings"] if f["rule_id"] == "MLS-FET-001"]
    assert git_sha1(CONFIG) in bad["evidence"] and "git-sha1" in bad["evidence"]


def test_sha256_for_a_whole_repository_is_a_usage_error(run_cli, hub, tmp_path):
    gpt2_like(hub)
    result = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--sha256", sha256(SAFETENSORS))
    assert result.exit_code == 2 and "selects 5" in result.output and "--include" in result.output
    one = fetch(run_cli, hub, "hf://acme/tiny-gpt", tmp_path / "d", "--sha256", sha256(SAFETENSORS),
                "--include", "model.safetensors", "--format", "json")
    assert one.exit_code == 0, one.output
    [item] = report(one)["metadata"]["fetch"]["files"]
    assert {c["source"].split(" ")[0] for c in item["checks"]} == {"Hugging", "--sha256"}


def test_plain_http_mirror_needs_permission_and_never_gets_the_token(run_cli, tmp_path, monkeypatch):
    state = Hub()
    server, base = serve(state)
    try:
        state.add_repo("acme/m", {"config.json": CONFIG})
        monkeypatch.setenv("HF_ENDPOINT", base)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        refused = run_cli("fetch", "hf://acme/m", "--dest", tmp_path / "a")
        assert refused.exit_code == 2 and "refused plain http" in refused.output
        allowed = run_cli("fetch", "hf://acme/m", "--dest", tmp_path / "a", "--allow-insecure-http",
                          "--format", "json")
        assert allowed.exit_code == 0, allowed.output
        assert "MLS-FET-004" in {f["rule_id"] for f in report(allowed)["findings"]}
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        state.log.clear()
        secret = run_cli("fetch", "hf://acme/m", "--dest", tmp_path / "b", "--allow-insecure-http")
        assert secret.exit_code == 2 and "clear text" in secret.output and TOKEN not in secret.output
        assert state.log == []
    finally:
        stop(server)
