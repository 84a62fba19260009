"""``mlscan fetch https://...`` against a real local server: TLS, transport policy, faults,
expected digests from the command line, a manifest and torch.hub file names."""

from __future__ import annotations

import json
import os
import pickle
import time

import pytest

from fixtures.builders.canary import CANARY_DIR, canary_command
from tests.conftest import SAMPLES
from tests.fetch_helpers import Hub, make_ca, serve, sha256, stop

WEIGHTS = (SAMPLES / "benign" / "safetensors" / "model.safetensors").read_bytes()
STATE_DICT = (SAMPLES / "benign" / "pickle" / "torch_legacy_state_dict.pt").read_bytes()
BIG = os.urandom(3 << 20)  # several read chunks, so resume continues mid-file


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(tls, monkeypatch):
    hub = Hub()
    server, base = serve(hub, tls=(tls[1], tls[2]))
    monkeypatch.setenv("MLSCAN_HTTP_BACKOFF", "0.01")
    hub.base, hub.ca = base, tls[0]  # type: ignore[attr-defined]
    yield hub
    stop(server)


@pytest.fixture
def http(monkeypatch):
    hub = Hub()
    server, base = serve(hub)
    monkeypatch.setenv("MLSCAN_HTTP_BACKOFF", "0.01")
    hub.base = base  # type: ignore[attr-defined]
    yield hub
    stop(server)


def get(run_cli, hub, name, dest, *extra, ca=True):
    args = ["fetch", f"{hub.base}/files/{name}", "--dest", dest, *extra]
    if ca:
        args += ["--ca-bundle", hub.ca]
    return run_cli(*args)


def findings(result) -> dict[str, dict]:
    return {f["rule_id"]: f for f in json.loads(result.stdout)["findings"]}


def test_tls_is_verified_and_ca_bundle_adds_a_trusted_ca(run_cli, https, tmp_path):
    https.files["model.safetensors"] = WEIGHTS
    refused = get(run_cli, https, "model.safetensors", tmp_path / "d", ca=False)
    assert refused.exit_code == 2
    assert "TLS verification failed" in refused.output and "--ca-bundle" in refused.output
    assert not (tmp_path / "d").exists()
    ok = get(run_cli, https, "model.safetensors", tmp_path / "d", "--sha256", sha256(WEIGHTS),
             "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == WEIGHTS
    assert findings(ok)["MLS-FET-009"]["severity"] == "info"


def test_plain_http_is_refused_unless_allowed_and_then_reported(run_cli, http, tmp_path):
    http.files["model.safetensors"] = WEIGHTS
    refused = get(run_cli, http, "model.safetensors", tmp_path / "d", ca=False)
    assert refused.exit_code == 2 and "refused plain http" in refused.output
    assert http.log == []  # refused before connecting
    allowed = get(run_cli, http, "model.safetensors", tmp_path / "d", "--allow-insecure-http",
                  "--format", "json", ca=False)
    assert allowed.exit_code == 0, allowed.output  # medium findings do not block by default
    found = findings(allowed)
    assert found["MLS-FET-004"]["severity"] == "medium" and "127.0.0.1" in found["MLS-FET-004"]["evidence"]
    assert found["MLS-FET-002"]["severity"] == "medium" and sha256(WEIGHTS) in found["MLS-FET-002"]["evidence"]
    assert (tmp_path / "d" / "model.safetensors").exists()
    blocked = get(run_cli, http, "model.safetensors", tmp_path / "e", "--allow-insecure-http",
                  "--fail-on", "medium", ca=False)
    assert blocked.exit_code == 1 and not (tmp_path / "e").exists()


def test_redirect_from_https_to_http_is_refused(run_cli, https, tmp_path):
    https.fault("/files/model.bin", "redirect", arg="http://127.0.0.1:9/files/model.bin")
    result = get(run_cli, https, "model.bin", tmp_path / "d", "--allow-insecure-http")
    assert result.exit_code == 2
    assert "redirected to plain http" in result.output and not (tmp_path / "d").exists()


def test_redirect_loops_are_bounded(run_cli, https, tmp_path):
    https.fault("/files/loop.bin", "redirect", times=100, arg="/files/loop.bin")
    result = get(run_cli, https, "loop.bin", tmp_path / "d")
    assert result.exit_code == 2 and "more than 5 redirects" in result.output
    assert len(https.requests_to("/files/loop.bin")) == 6


def test_redirects_within_https_are_followed(run_cli, https, tmp_path):
    https.files["real.safetensors"] = WEIGHTS
    https.fault("/files/model.safetensors", "redirect", arg=f"{https.base}/files/real.safetensors")
    result = get(run_cli, https, "model.safetensors", tmp_path / "d", "--sha256", sha256(WEIGHTS))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == WEIGHTS  # named after the URL


def test_slow_server_times_out_with_a_clear_message(run_cli, https, tmp_path):
    https.fault("/files/slow.bin", "slow", times=10, arg=5.0)
    started = time.monotonic()
    result = get(run_cli, https, "slow.bin", tmp_path / "d", "--timeout", "0.3", "--retries", "1")
    assert result.exit_code == 2
    assert "timed out after 0.3 s" in result.output and "2 attempts" in result.output
    assert "--timeout" in result.output
    assert time.monotonic() - started < 4
    assert len(https.requests_to("/files/slow.bin")) == 2


def test_huge_content_length_is_refused_under_max_size(run_cli, https, tmp_path):
    https.files["huge.bin"] = b"x" * 100
    https.fault("/files/huge.bin", "huge", arg=10**12)
    result = get(run_cli, https, "huge.bin", tmp_path / "d", "--max-size", "1M")
    assert result.exit_code == 2
    assert "1000000000000 bytes" in result.output and "--max-size 1048576" in result.output
    assert not (tmp_path / "d").exists() and not list(tmp_path.iterdir())


def test_max_size_also_applies_while_streaming(run_cli, https, tmp_path):
    https.files["big.bin"] = BIG
    https.fault("/files/big.bin", "nolength")  # no size announced: only counting can stop it
    result = get(run_cli, https, "big.bin", tmp_path / "d", "--max-size", "1MiB")
    assert result.exit_code == 2 and "more than --max-size 1048576 bytes arrived" in result.output
    assert not (tmp_path / "d").exists()
    https.fault("/files/big.bin", "nolength")
    unlimited = get(run_cli, https, "big.bin", tmp_path / "d", "--sha256", sha256(BIG))
    assert unlimited.exit_code == 0, unlimited.output
    assert (tmp_path / "d" / "big.bin").read_bytes() == BIG


def test_dropped_connection_resumes_with_range(run_cli, https, tmp_path):
    https.files["big.bin"] = BIG
    https.fault("/files/big.bin", "drop", times=2)
    result = get(run_cli, https, "big.bin", tmp_path / "d", "--sha256", sha256(BIG), "--format", "json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "big.bin").read_bytes() == BIG
    ranges = [h.get("Range") for _, h in https.requests_to("/files/big.bin")]
    assert ranges[0] is None and len(ranges) == 3
    offsets = [int(r[len("bytes="):-1]) for r in ranges[1:]]
    assert 0 < offsets[0] < offsets[1] < len(BIG)  # each attempt continued where the last stopped
    assert all(h.get("If-Range") for _, h in https.requests_to("/files/big.bin")[1:])
    assert json.loads(result.stdout)["metadata"]["fetch"]["files"][0]["resumed"] == 2


def test_server_without_range_support_restarts_the_download(run_cli, https, tmp_path):
    https.files["big.bin"] = BIG
    https.fault("/files/big.bin", "drop")
    https.fault("/files/big.bin", "norange")
    result = get(run_cli, https, "big.bin", tmp_path / "d", "--sha256", sha256(BIG))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "big.bin").read_bytes() == BIG


def test_body_cut_short_every_time_fails_after_the_retries(run_cli, https, tmp_path):
    https.files["big.bin"] = BIG
    https.fault("/files/big.bin", "drop", times=100, arg=0.0)  # headers, then nothing
    result = get(run_cli, https, "big.bin", tmp_path / "d", "--retries", "2")
    assert result.exit_code == 2
    assert f"connection broke mid-download (0 of {len(BIG)} bytes received)" in result.output
    assert "3 attempts" in result.output
    assert len(https.requests_to("/files/big.bin")) == 3
    assert not (tmp_path / "d").exists()


def test_http_errors_have_clear_messages(run_cli, https, tmp_path):
    missing = get(run_cli, https, "missing.bin", tmp_path / "d")
    assert missing.exit_code == 2 and "404 Not Found" in missing.output and "check the URL" in missing.output
    https.fault("/files/private.bin", "status", arg=(401, {}))
    denied = get(run_cli, https, "private.bin", tmp_path / "d")
    assert denied.exit_code == 2 and "401 Unauthorized" in denied.output
    https.files["busy.bin"] = WEIGHTS
    https.fault("/files/busy.bin", "status", times=10, arg=(503, {}))
    busy = get(run_cli, https, "busy.bin", tmp_path / "d", "--retries", "1")
    assert busy.exit_code == 2 and "503" in busy.output and "retry later" in busy.output


def test_sha256_mismatch_never_lands(run_cli, https, tmp_path):
    https.files["model.safetensors"] = WEIGHTS
    result = get(run_cli, https, "model.safetensors", tmp_path / "d", "--sha256", "0" * 64, "--format", "json")
    assert result.exit_code == 1
    bad = findings(result)["MLS-FET-001"]
    assert bad["severity"] == "critical" and "--sha256" in bad["evidence"] and sha256(WEIGHTS) in bad["evidence"]
    assert not (tmp_path / "d").exists()
    assert [p for p in tmp_path.iterdir()] == []  # the quarantine is gone too


def test_torch_hub_name_prefix_is_partial_and_a_wrong_prefix_is_critical(run_cli, https, tmp_path):
    good = f"resnet18-{sha256(STATE_DICT)[:8]}.pth"
    https.files[good] = STATE_DICT
    https.files["resnet18-deadbeef.pth"] = STATE_DICT
    https.files["resnet18-.pth"] = STATE_DICT
    partial = get(run_cli, https, good, tmp_path / "a", "--format", "json")
    assert partial.exit_code == 0, partial.output
    assert findings(partial)["MLS-FET-006"]["severity"] == "medium"
    assert json.loads(partial.stdout)["metadata"]["fetch"]["files"][0]["status"] == "partial-match"
    wrong = get(run_cli, https, "resnet18-deadbeef.pth", tmp_path / "b", "--format", "json")
    assert wrong.exit_code == 1 and "deadbeef" in findings(wrong)["MLS-FET-001"]["evidence"]
    assert not (tmp_path / "b").exists()
    empty = get(run_cli, https, "resnet18-.pth", tmp_path / "c", "--format", "json")
    assert "MLS-FET-002" in findings(empty) and "MLS-FET-006" not in findings(empty)


def test_manifest_entries_are_found_by_file_name(run_cli, https, tmp_path):
    https.files["model.safetensors"] = WEIGHTS
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{sha256(WEIGHTS)}  weights/model.safetensors\n")
    ok = get(run_cli, https, "model.safetensors", tmp_path / "d", "--manifest", sums, "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert "SHA256SUMS" in findings(ok)["MLS-FET-009"]["evidence"]
    sums.write_text(f"{'1' * 64}  model.safetensors\n")
    bad = get(run_cli, https, "model.safetensors", tmp_path / "e", "--manifest", sums, "--format", "json")
    assert bad.exit_code == 1 and "manifest" in findings(bad)["MLS-FET-001"]["evidence"]
    sums.write_text("not a manifest\n")
    unusable = get(run_cli, https, "model.safetensors", tmp_path / "f", "--manifest", sums)
    assert unusable.exit_code == 2 and "manifest" in unusable.output
    assert not (tmp_path / "e").exists() and not (tmp_path / "f").exists()


def test_malicious_pickle_with_a_correct_digest_still_never_lands(run_cli, https, tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, (canary_command("fetch_url_e2e"),)

    data = pickle.dumps(Payload(), protocol=4)
    https.files["model.pt"] = data
    # Only our own canary file: other test runs may share CANARY_DIR concurrently.
    canary = CANARY_DIR / "fetch_url_e2e"
    CANARY_DIR.mkdir(exist_ok=True)
    canary.unlink(missing_ok=True)
    try:
        result = get(run_cli, https, "model.pt", tmp_path / "d", "--sha256", sha256(data))
        assert result.exit_code == 1
        assert "MLS-PKL-" in result.stdout and "Nothing was written" in result.stdout
        assert not (tmp_path / "d").exists()
        assert not canary.exists(), "the payload ran"
    finally:
        canary.unlink(missing_ok=True)


def test_scan_url_downloads_scans_and_cleans_up(run_cli, https, tmp_path, monkeypatch):
    https.files["model.safetensors"] = WEIGHTS
    monkeypatch.setenv("MLSCAN_CA_BUNDLE", str(https.ca))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = run_cli("scan", f"{https.base}/files/model.safetensors", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [a["path"] for a in json.loads(result.stdout)["artifacts"]] == ["model.safetensors"]
    assert list(tmp_path.iterdir()) == []
    refused = run_cli("scan", "http://127.0.0.1:9/model.pt")
    assert refused.exit_code == 2 and "refused plain http" in refused.output


def test_sarif_report_of_a_blocked_fetch_is_valid(run_cli, https, tmp_path):
    from tests.test_report_formats import assert_valid, sarif_validator

    https.files["model.safetensors"] = WEIGHTS
    result = get(run_cli, https, "model.safetensors", tmp_path / "d", "--sha256", "0" * 64,
                 "--format", "sarif", "-o", tmp_path / "r.sarif")
    assert result.exit_code == 1
    document = json.loads((tmp_path / "r.sarif").read_text())
    assert_valid(sarif_validator(), document)
    assert "MLS-FET-001" in {r["ruleId"] for r in document["runs"][0]["results"]}
    assert "Nothing was written" in result.stderr


def test_a_policy_cannot_unblock_a_digest_mismatch(run_cli, https, tmp_path):
    https.files["model.safetensors"] = WEIGHTS
    config = tmp_path / "mlscan.toml"
    config.write_text('[tool.mlscan]\ndisable = ["MLS-FET-001"]\n')
    result = get(run_cli, https, "model.safetensors", tmp_path / "d", "--sha256", "0" * 64,
                 "--config", config)
    assert result.exit_code == 1, result.output
    assert "MLS-FET-001" not in result.stdout  # the policy did hide the finding...
    assert "verification failed" in result.stdout and not (tmp_path / "d").exists()  # ...not the block


def test_the_registry_blocks_known_bad_and_pins_registered_digests(run_cli, https, tmp_path):
    """Registry lookups (issue #7) apply to fetch: a denied digest never lands, and a file a
    registered model pins by source URL must match the registered digest."""
    from scanner.registry.store import default_path

    https.files["model.safetensors"] = WEIGHTS
    registry = default_path()  # the per-test $XDG_DATA_HOME from conftest
    assert run_cli("registry", "init").exit_code == 0
    assert run_cli("registry", "deny", sha256(WEIGHTS), "--reason", "advisory X").exit_code == 0
    denied = get(run_cli, https, "model.safetensors", tmp_path / "d", "--sha256", sha256(WEIGHTS),
                 "--format", "json")
    assert denied.exit_code == 1 and findings(denied)["MLS-REG-001"]["severity"] == "critical"
    assert not (tmp_path / "d").exists()
    registry.unlink()
    assert run_cli("registry", "init").exit_code == 0
    local = tmp_path / "registered"
    local.mkdir()
    (local / "model.safetensors").write_bytes(WEIGHTS[:-1] + bytes([WEIGHTS[-1] ^ 1]))  # vetted bytes differ
    url = f"{https.base}/files/model.safetensors"
    assert run_cli("registry", "add", local, "--name", "acme/m", "--version", "1", "--source", url,
                   "--allow-unsigned").exit_code == 0
    pinned = get(run_cli, https, "model.safetensors", tmp_path / "e", "--format", "json")
    assert pinned.exit_code == 1
    assert "registry acme/m@1" in findings(pinned)["MLS-FET-001"]["evidence"]
    assert not (tmp_path / "e").exists()
