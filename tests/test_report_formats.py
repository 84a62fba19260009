"""Every report format over every committed sample plus a tree that yields every severity:
SARIF validates against the official OASIS schema, JSON against schemas/report.schema.json,
JUnit and markdown parse and say the same thing as the findings.

Helpers here (tree builders, validators, render) are shared by the other report/policy tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from jsonschema.validators import validator_for

from fixtures.builders.canary import CANARY_DIR, canary_command
from scanner import __version__
from scanner.core.finding import Severity
from scanner.core.result import ScanResult
from scanner.core.rules import load_catalogue
from scanner.engine import Scanner
from scanner.policy.apply import Policy, PolicyInputs
from scanner.report import REPORTERS, get_reporter
from scanner.report.interface import ReportContext
from scanner.report.json import SCHEMA_VERSION
from tests.conftest import ROOT, SAMPLES

SARIF_VENDORED = ROOT / "schemas" / "sarif-schema-2.1.0.json"
SARIF_SHARED = ROOT.parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"
REPORT_SCHEMA = ROOT / "schemas" / "report.schema.json"


# --------------------------------------------------------------------------- helpers

class _Payload:
    """Pickles to a call of os.system that would only touch the canary file."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return (os.system, (canary_command(self.name),))


def malicious_pickle(name: str = "report-tree") -> bytes:
    return pickle.dumps(_Payload(name), protocol=4)


def build_severity_tree(root: Path) -> Path:
    """Files that between them yield a finding of every severity (low comes from the
    config's unused suppression, MLS-POL-002), plus a benign pickle."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "evil.pkl").write_bytes(malicious_pickle())          # critical
    (root / "notes.txt").write_bytes(malicious_pickle("report-notes"))      # critical (disguised)
    (root / "libop.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 57)  # high: native code
    (root / "weights.pt").write_bytes(b"\x00\x01\x02 not a model")          # medium: lying name
    (root / "blob.dat").write_bytes(bytes(range(7, 200)))                   # info: unknown
    (root / "models" / "ok.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    (root / ".mlscan.toml").write_text(
        '[[suppress]]\nrule = "MLS-GEN-007"\npath = "vendor/*.so"\n'
        'reason = "custom op built from reviewed source"\n')
    return root


def sarif_validator():
    """The official SARIF 2.1.0 schema: the vendored copy, else the shared one beside the repo."""
    path = SARIF_VENDORED if SARIF_VENDORED.exists() else SARIF_SHARED
    schema = json.loads(path.read_text())
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def report_validator():
    schema = json.loads(REPORT_SCHEMA.read_text())
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid(validator, document) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


def scan_with_policy(targets: list[Path | str], config: Path | None = None,
                     fail_on: Severity | None = None):
    """Scan and apply policy the way ``mlscan scan`` does; returns (result, ReportContext)."""
    rules = load_catalogue()
    policy = Policy.load(PolicyInputs(config=config, no_config=config is None, fail_on=fail_on), rules)
    result = Scanner().scan([str(t) for t in targets])
    outcome = policy.apply(result, rules, __version__)
    code = 1 if result.failing(policy.fail_on) else 0
    ctx = ReportContext(fail_on=policy.fail_on, exit_code=code, rules=rules, tool_version=__version__,
                        config=outcome.config, fingerprints=outcome.fingerprints)
    return result, ctx


def render(fmt: str, result: ScanResult, ctx: ReportContext) -> str:
    return get_reporter(fmt).render(result, ctx)


def committed_samples() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file() and not p.is_symlink()
                  and p.relative_to(SAMPLES).parts[0] in ("benign", "malicious"))


# --------------------------------------------------------------------------- the corpus scan

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One scan of every committed sample and of the severity tree (two targets)."""
    tree = build_severity_tree(tmp_path_factory.mktemp("report") / "tree")
    targets: list[Path | str] = [tree]
    if committed_samples():
        targets.insert(0, SAMPLES)
    result, ctx = scan_with_policy(targets, config=tree / ".mlscan.toml")
    return tree, targets, result, ctx


def test_the_corpus_covers_every_severity(corpus):
    _tree, _targets, result, _ctx = corpus
    assert {f.severity for f in result.findings} == set(Severity)


def test_sarif_for_every_sample_and_severity_is_valid(corpus):
    tree, targets, result, ctx = corpus
    sarif = json.loads(render("sarif", result, ctx))
    assert_valid(sarif_validator(), sarif)
    (run,) = sarif["runs"]
    assert len(run["results"]) == len(result.findings)
    assert run["invocations"][0]["exitCode"] == ctx.exit_code == 1
    # every committed sample is an artifact with its real SHA-256
    bases = {k: Path(unquote(urlparse(v["uri"]).path)) for k, v in run["originalUriBaseIds"].items()}
    on_disk = {}
    for entry in run["artifacts"]:
        loc = entry["location"]
        if "parentIndex" not in entry and "uriBaseId" in loc:
            on_disk[bases[loc["uriBaseId"]] / unquote(loc["uri"])] = entry
    for sample in committed_samples() + [tree / "models" / "evil.pkl", tree / "libop.so"]:
        entry = on_disk.get(sample.resolve())
        assert entry is not None, f"{sample} is not a SARIF artifact"
        assert entry["hashes"]["sha-256"] == hashlib.sha256(sample.read_bytes()).hexdigest()
    # every result's URI resolves, through its base id, to a file that exists
    for res in run["results"]:
        loc = res["locations"][0]["physicalLocation"]["artifactLocation"]
        if "uriBaseId" in loc:
            assert os.path.lexists(bases[loc["uriBaseId"]] / unquote(loc["uri"])), loc
        assert run["artifacts"][loc["index"]]["location"]["uri"] == loc["uri"]
        assert res["level"] in ("error", "warning", "note")


def test_sarif_rules_are_the_catalogue_with_github_severity_scores(corpus):
    _tree, _targets, result, ctx = corpus
    (run,) = json.loads(render("sarif", result, ctx))["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(ctx.rules)
    expected = {"critical": (9.0, 10.0), "high": (7.0, 8.9), "medium": (4.0, 6.9), "low": (0.1, 3.9)}
    for descriptor in rules:
        rule = ctx.rules[descriptor["id"]]
        props = descriptor["properties"]
        assert descriptor["shortDescription"]["text"] == rule.title
        assert rule.remediation in descriptor["help"]["text"]
        assert f"failure-mode-{int(rule.failure_mode)}" in props["tags"]
        assert set(rule.cia) <= set(props["tags"]) and "security" in props["tags"]
        if rule.severity is Severity.INFO:
            assert "security-severity" not in props
        else:
            low, high = expected[rule.severity.label]
            assert low <= float(props["security-severity"]) <= high
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]


def test_json_report_for_every_sample_and_severity_matches_the_schema(corpus):
    _tree, _targets, result, ctx = corpus
    report = json.loads(render("json", result, ctx))
    assert_valid(report_validator(), report)
    assert report["policy"]["source"] == str((_tree / ".mlscan.toml").resolve())
    assert {f["severity"] for f in report["findings"]} == {s.label for s in Severity}
    fps = [f["fingerprint"] for f in report["findings"]]
    assert len(set(fps)) == len(fps)
    sarif = json.loads(render("sarif", result, ctx))
    assert fps == [r["partialFingerprints"]["mlscanFingerprint/v1"] for r in sarif["runs"][0]["results"]]


def test_junit_has_one_testcase_per_artifact_and_fails_only_at_fail_on(corpus):
    _tree, _targets, result, ctx = corpus
    root = ET.fromstring(render("junit", result, ctx))
    cases = root.findall("./testsuite/testcase")
    names = [c.get("name") for c in cases]
    assert set(names) >= {a.location for a in result.artifacts}
    assert len(names) == len(set(names))
    failing_locations = {f.location.artifact for f in result.failing(ctx.fail_on)}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == failing_locations
    assert root.get("failures") == str(len(failed))
    settings = {p.get("name"): p.get("value") for p in root.findall("./testsuite/properties/property")}
    assert settings["fail_on"] == "high" and settings["config"] == ctx.config["source"]
    weights = next(c for c in cases if c.get("name", "").endswith("weights.pt"))
    assert weights.find("failure") is None and "MLS-GEN-010" in weights.findtext("system-out")


def test_markdown_summarises_the_same_findings(corpus):
    _tree, _targets, result, ctx = corpus
    text = render("markdown", result, ctx)
    assert text.startswith("## mlscan: FAIL")
    for finding in result.findings:
        if finding.severity > Severity.INFO:
            assert finding.rule_id in text
    assert len(text) < 65_536


def test_every_reporter_is_registered_and_renders_an_empty_scan():
    assert {"text", "json", "sarif", "junit", "markdown"} <= set(REPORTERS)
    rules = load_catalogue()
    ctx = ReportContext(fail_on=Severity.HIGH, exit_code=0, rules=rules, tool_version=__version__)
    empty = ScanResult(targets=["."])
    assert_valid(sarif_validator(), json.loads(render("sarif", empty, ctx)))
    assert_valid(report_validator(), json.loads(render("json", empty, ctx)))
    assert ET.fromstring(render("junit", empty, ctx)).get("tests") == "0"
    assert "PASS" in render("markdown", empty, ctx)


def test_cli_writes_valid_sarif_and_json_end_to_end(run_cli, tmp_path):
    tree = build_severity_tree(tmp_path / "tree")
    sarif_path, json_path = tmp_path / "out.sarif", tmp_path / "out.json"
    first = run_cli("scan", "--no-config", "--format", "sarif", "-o", sarif_path, tree)
    second = run_cli("scan", "--no-config", "--format", "json", "-o", json_path, tree)
    assert first.exit_code == second.exit_code == 1
    sarif = json.loads(sarif_path.read_text())
    assert_valid(sarif_validator(), sarif)
    assert sarif["runs"][0]["invocations"][0]["exitCode"] == 1
    report = json.loads(json_path.read_text())
    assert_valid(report_validator(), report)
    assert report["policy"]["source"] is None
    assert not CANARY_DIR.exists() or not any(CANARY_DIR.glob("report-*"))


def test_the_json_schema_version_is_honest():
    schema = json.loads(REPORT_SCHEMA.read_text())
    assert schema["x-schema-version"] == SCHEMA_VERSION
    major = SCHEMA_VERSION.split(".")[0]
    assert schema["properties"]["schema_version"]["pattern"].startswith(f"^{major}\\.")
    assert schema["$id"].endswith(f":{major}")


def test_json_schema_rejects_what_the_reporter_must_not_emit(corpus):
    _tree, _targets, result, ctx = corpus
    report = json.loads(render("json", result, ctx))
    validator = report_validator()
    broken = json.loads(json.dumps(report))
    broken["findings"][0]["severity"] = "urgent"
    assert list(validator.iter_errors(broken))
    broken = json.loads(json.dumps(report))
    del broken["findings"][0]["fingerprint"]
    assert list(validator.iter_errors(broken))
    broken = json.loads(json.dumps(report))
    broken["schema_version"] = "2.0.0"
    assert list(validator.iter_errors(broken))


def test_vendored_sarif_schema_is_the_official_one():
    if not SARIF_SHARED.exists():
        pytest.skip("no ../shared beside the repository")
    assert SARIF_VENDORED.read_bytes() == SARIF_SHARED.read_bytes()
