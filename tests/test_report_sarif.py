"""SARIF details: archive members as nested artifacts, regions, URIs relative to the scan root,
tool notifications, and SARIF documents that still validate in edge cases."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import scanner.engine as engine
from scanner import __version__
from scanner.analyzers import analyzer_paths_for
from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.blob import BytesBlob
from scanner.core.finding import Finding, Location, Severity
from scanner.core.result import ArtifactRecord, ScanResult
from scanner.core.rules import load_catalogue
from scanner.engine import Scanner
from scanner.formats.interface import Format
from scanner.report.interface import ReportContext
from tests.test_report_formats import assert_valid, malicious_pickle, render, sarif_validator


class _TestZip(Analyzer):
    """A minimal container analyzer for when no real zip analyzer is registered yet."""

    name = "test-zip"
    formats = frozenset({Format.ZIP})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        with zipfile.ZipFile(artifact.blob.open()) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield Artifact(artifact.location.child(info.filename),
                                   BytesBlob(archive.read(info)), info.filename.rsplit("/", 1)[-1],
                                   depth=artifact.depth + 1)


@pytest.fixture
def zip_support(monkeypatch):
    if analyzer_paths_for(Format.ZIP):
        return  # the real archive analyzer is there: use it
    real = engine.analyzers_for
    monkeypatch.setattr(engine, "analyzers_for",
                        lambda fmt: [_TestZip()] if fmt is Format.ZIP else real(fmt))


def _ctx(result: ScanResult, fail_on: Severity = Severity.HIGH) -> ReportContext:
    return ReportContext(fail_on=fail_on, exit_code=1 if result.failing(fail_on) else 0,
                         rules=load_catalogue(), tool_version=__version__)


def _sarif(result: ScanResult) -> dict:
    document = json.loads(render("sarif", result, _ctx(result)))
    assert_valid(sarif_validator(), document)
    return document


def _nested_zip() -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("payload/data.pkl", malicious_pickle("sarif-nested"))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("bundle/inner.zip", inner.getvalue())
        z.writestr("README.txt", "hello")
    return outer.getvalue()


def test_archive_members_are_nested_artifacts_and_results_point_at_the_file(tmp_path, zip_support):
    (tmp_path / "bundle.zip").write_bytes(_nested_zip())
    result = Scanner().scan([tmp_path])
    deep = [f for f in result.findings if len(f.location.members) == 2]
    assert deep, [str(f.location) for f in result.findings]
    run = _sarif(result)["runs"][0]
    artifacts = run["artifacts"]

    def chain(index: int) -> list[str]:
        names = []
        while index is not None:
            names.append(artifacts[index]["location"]["uri"])
            index = artifacts[index].get("parentIndex")
        return names[::-1]

    chains = [chain(i) for i in range(len(artifacts))]
    assert ["bundle.zip", "bundle/inner.zip", "payload/data.pkl"] in chains
    top = chains.index(["bundle.zip"])
    assert artifacts[top]["location"]["uriBaseId"] == "SCANROOT"
    assert "sha-256" in artifacts[top]["hashes"]
    finding = deep[0]
    res = next(r for r in run["results"] if r["ruleId"] == finding.rule_id
               and r.get("relatedLocations"))
    primary = res["locations"][0]
    assert primary["physicalLocation"]["artifactLocation"] == {"uri": "bundle.zip", "uriBaseId": "SCANROOT",
                                                               "index": top}
    assert "region" not in primary["physicalLocation"]  # an offset inside a member is not a file offset
    assert primary["logicalLocations"][0]["fullyQualifiedName"] == "bundle.zip!bundle/inner.zip!payload/data.pkl"
    related = res["relatedLocations"][0]["physicalLocation"]["artifactLocation"]
    assert chain(related["index"]) == ["bundle.zip", "bundle/inner.zip", "payload/data.pkl"]


def test_top_level_offsets_become_byte_regions_and_single_files_are_relative_to_their_dir(tmp_path):
    model = tmp_path / "dir with space" / "model #1.pkl"
    model.parent.mkdir()
    model.write_bytes(b"\x80\x02}q\x00." + malicious_pickle("sarif-offset"))
    result = Scanner().scan([model])
    run = _sarif(result)["runs"][0]
    assert run["originalUriBaseIds"]["SCANROOT"]["uri"] == model.parent.as_uri() + "/"
    located = [r for r in run["results"] if "region" in r["locations"][0]["physicalLocation"]]
    for res in run["results"]:
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "model%20%231.pkl"
    offsets = {f.location.offset for f in result.findings if f.location.offset is not None}
    assert {r["locations"][0]["physicalLocation"]["region"]["byteOffset"] for r in located} == offsets


def test_scan_errors_are_notifications_and_mark_the_run_unsuccessful(tmp_path):
    result = ScanResult(targets=[str(tmp_path)])
    (tmp_path / "x.pkl").write_bytes(b"x")
    result.artifacts.append(ArtifactRecord("x.pkl", "pickle", 1, "0" * 64))
    rules = load_catalogue()
    result.findings.append(rules.finding("MLS-GEN-002", Location("x.pkl"), "pickle analyzer failed"))
    from scanner.core.result import ScanError
    result.errors.append(ScanError("x.pkl", "pickle analyzer failed: boom", "pickle"))
    invocation = _sarif(result)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert "boom" in note["message"]["text"] and note["level"] == "error"


def test_locations_outside_every_root_are_absolute_file_uris(tmp_path):
    outside = tmp_path / "elsewhere" / "pyproject.toml"
    outside.parent.mkdir()
    outside.write_text("")
    root = tmp_path / "models"
    root.mkdir()
    rules = load_catalogue()
    result = ScanResult(targets=[str(root)])
    result.findings.append(rules.finding("MLS-POL-002", Location(str(outside)).at(node="suppress[1]"), "x"))
    run = _sarif(result)["runs"][0]
    loc = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert loc["uri"] == Path(outside).as_uri() and "uriBaseId" not in loc


def test_hostile_member_names_and_evidence_still_validate(tmp_path):
    rules = load_catalogue()
    result = ScanResult(targets=[str(tmp_path)])
    (tmp_path / "m.pt").write_bytes(b"x")
    result.artifacts.append(ArtifactRecord("m.pt", "zip", 1, "a" * 64))
    result.artifacts.append(ArtifactRecord("m.pt!../../etc/passwd", "text", 1))
    loc = Location("m.pt", ("../../etc/passwd",)).at(offset=3, node="\x00<script>")
    result.findings.append(rules.finding("MLS-GEN-006", loc, "evidence \x1b[31m with \x00 control"))
    run = _sarif(result)["runs"][0]
    member = next(a for a in run["artifacts"] if "parentIndex" in a)
    assert member["location"]["uri"] == "../../etc/passwd"
    assert run["results"][0]["relatedLocations"][0]["physicalLocation"]["region"] == {"byteOffset": 3}
