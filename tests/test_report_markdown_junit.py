"""Markdown for PR comments (injection-proof, size-capped) and JUnit XML (valid whatever the
scanned files contain, failures only at or above --fail-on)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from scanner import __version__
from scanner.core.finding import Location, Severity
from scanner.core.result import ArtifactRecord, ScanResult
from scanner.core.rules import load_catalogue
from scanner.report.interface import ReportContext
from scanner.report.markdown import code_block, code_span
from tests.test_report_formats import malicious_pickle, render


def _ctx(result: ScanResult, fail_on: Severity = Severity.HIGH) -> ReportContext:
    return ReportContext(fail_on=fail_on, exit_code=1 if result.failing(fail_on) else 0,
                         rules=load_catalogue(), tool_version=__version__)


def _outside_code(markdown: str) -> str:
    """What a markdown renderer would interpret: the text minus fenced blocks and code spans."""
    text = re.sub(r"^(`{3,})text\n.*?\n\1$", "", markdown, flags=re.S | re.M)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)


def test_hostile_file_names_never_render_as_markdown_or_html(run_cli, tmp_path):
    name = "a](https:evil)<img src=x onerror=alert(1)>|@admin`x.pkl"
    (tmp_path / name).write_bytes(malicious_pickle("md-inject"))
    out = run_cli("scan", "--no-config", "--format", "markdown", tmp_path).stdout
    assert out.startswith("## mlscan: FAIL") and "MLS-PKL-001" in out
    visible = _outside_code(out)
    assert "<img" not in visible and "](https:evil)" not in visible and "@admin" not in visible
    # table rows keep their four cells although the name contains a pipe
    rows = [line for line in out.splitlines() if line.startswith("| critical | `MLS-")]
    assert rows and all(len(re.split(r"(?<!\\)\|", row)) == 6 for row in rows)


def test_code_spans_and_blocks_cannot_be_closed_from_inside():
    assert code_span("a``b") == "```a``b```"
    assert code_span("`x`") == "`` `x` ``"
    block = code_block("```\n</details>\n````")
    fence = block.split("text", 1)[0]
    assert len(fence) == 5 and block.endswith("\n" + fence)


def test_markdown_stays_under_the_comment_limit():
    rules = load_catalogue()
    result = ScanResult(targets=["."])
    for i in range(3000):
        result.findings.append(rules.finding("MLS-GEN-007", Location(f"lib{i:04}.so"), "x" * 500))
    text = render("markdown", result, _ctx(result))
    assert len(text) < 65_536
    assert "more finding(s)" in text


def test_markdown_pass_and_info_hidden_without_verbose():
    rules = load_catalogue()
    result = ScanResult(targets=["."])
    result.findings.append(rules.finding("MLS-GEN-009", Location("notes.bin"), "not a model"))
    text = render("markdown", result, _ctx(result))
    assert text.startswith("## mlscan: PASS") and "notes.bin" not in text
    assert "1 info finding(s) not shown" in text


def test_junit_is_valid_xml_whatever_the_evidence_contains():
    rules = load_catalogue()
    result = ScanResult(targets=["."])
    result.artifacts.append(ArtifactRecord("m\x01.pkl", "pickle", 3, "b" * 64))
    result.findings.append(rules.finding("MLS-GEN-006", Location("m\x01.pkl"),
                                         "bytes \x00\x07\x1b]0;title\x07 and <tag> & \ud800"))
    result.findings.append(rules.finding("MLS-GEN-010", Location("m\x01.pkl"), "medium one"))
    root = ET.fromstring(render("junit", result, _ctx(result)))
    (case,) = root.iter("testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "MLS-GEN-006"
    assert "<tag> & " in failure.text and "\\x00" in failure.text
    assert "MLS-GEN-010" in case.findtext("system-out")
    assert {p.get("name"): p.get("value") for p in case.iter("property")}["sha256"] == "b" * 64


def test_junit_failures_follow_fail_on_and_unscanned_locations_get_a_testcase():
    rules = load_catalogue()
    result = ScanResult(targets=["."])
    result.artifacts.append(ArtifactRecord("w.pt", "unknown", 3, "c" * 64))
    result.findings.append(rules.finding("MLS-GEN-010", Location("w.pt"), "medium"))
    result.findings.append(rules.finding("MLS-GEN-001", Location("locked.pkl"), "cannot open"))
    high = ET.fromstring(render("junit", result, _ctx(result, Severity.HIGH)))
    medium = ET.fromstring(render("junit", result, _ctx(result, Severity.MEDIUM)))
    assert {c.get("name") for c in high.iter("testcase")} == {"w.pt", "locked.pkl"}
    assert high.get("failures") == "1" and medium.get("failures") == "2"
