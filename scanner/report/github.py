"""GitHub Actions glue: turn an mlscan SARIF file into workflow annotations and a job summary.

``python -m scanner.report.github mlscan.sarif`` is what the composite action (``action.yml``)
runs after the scan, so a single scan feeds code scanning (the SARIF upload), the log
(``::error file=...::`` annotations) and the run page (``$GITHUB_STEP_SUMMARY``), and repositories
without code scanning still see every finding. It reads only our own SARIF output.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from scanner.report.markdown import code_span

_COMMANDS = {"error": "error", "warning": "warning", "note": "notice", "none": "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _file_path(location: dict[str, Any], bases: dict[str, Any], workspace: Path) -> str:
    """The repository-relative path of a result's file (what GitHub annotates)."""
    artifact = location.get("physicalLocation", {}).get("artifactLocation", {})
    uri = artifact.get("uri", "")
    base = bases.get(artifact.get("uriBaseId", ""), {}).get("uri")
    if base and urlparse(base).scheme == "file":
        path = Path(unquote(urlparse(base).path)) / unquote(uri)
    elif urlparse(uri).scheme == "file":
        path = Path(unquote(urlparse(uri).path))
    else:
        return unquote(uri)
    try:
        return path.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def workflow_commands(sarif: dict[str, Any], workspace: Path) -> list[str]:
    lines: list[str] = []
    for run in sarif.get("runs", []):
        bases = run.get("originalUriBaseIds", {})
        for result in run.get("results", []):
            command = _COMMANDS.get(result.get("level", "warning"), "warning")
            locations = result.get("locations") or [{}]
            file = _file_path(locations[0], bases, workspace)
            title = f"mlscan {result.get('ruleId', '')}"
            message = result.get("message", {}).get("text", "")
            lines.append(f"::{command} file={_escape_property(file)},title={_escape_property(title)}"
                         f"::{_escape_data(message)}")
    return lines


def summary(sarif: dict[str, Any]) -> str:
    lines: list[str] = []
    for run in sarif.get("runs", []):
        invocation = (run.get("invocations") or [{}])[0]
        code = invocation.get("exitCode")
        fail_on = run.get("properties", {}).get("failOn", "high")
        results = run.get("results", [])
        verdict = {0: "PASS", 1: "FAIL"}.get(code, "ERROR")
        lines += [f"## mlscan: {verdict}", "",
                  f"{len(results)} finding(s) in {len(run.get('artifacts', []))} artifact(s); "
                  f"fail-on `{fail_on}`.", ""]
        if results:
            lines += ["| level | severity | rule | location |", "|---|---|---|---|"]
            for result in results[:200]:
                logical = (result.get("locations") or [{}])[0].get("logicalLocations") or []
                where = logical[0].get("fullyQualifiedName") if logical else None
                if where is None:
                    where = (result.get("locations") or [{}])[0].get("physicalLocation", {}) \
                        .get("artifactLocation", {}).get("uri", "")
                lines.append(f"| {result.get('level', '')} | {result.get('properties', {}).get('severity', '')} "
                             f"| `{result.get('ruleId', '')}` | {code_span(unquote(str(where)))} |")
            if len(results) > 200:
                lines.append(f"| | | | … {len(results) - 200} more in the SARIF report |")
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m scanner.report.github REPORT.sarif", file=sys.stderr)
        return 2
    try:
        sarif = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"mlscan: cannot read SARIF report {args[0]}: {exc}", file=sys.stderr)
        return 2
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
    for line in workflow_commands(sarif, workspace):
        print(line)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(summary(sarif))
    return 0


if __name__ == "__main__":
    sys.exit(main())
