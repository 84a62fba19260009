"""Report renderers: one module per output format behind :class:`Reporter`."""

from __future__ import annotations

import importlib

from scanner.report.interface import Reporter

# format name -> "module:Class"; imported only when chosen.
REPORTERS: dict[str, str] = {
    "text": "scanner.report.text:TextReporter",
    "json": "scanner.report.json:JsonReporter",
    "sarif": "scanner.report.sarif:SarifReporter",
    "junit": "scanner.report.junit:JunitReporter",
    "markdown": "scanner.report.markdown:MarkdownReporter",
}


def get_reporter(name: str) -> Reporter:
    module_name, _, class_name = REPORTERS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)()  # type: ignore[no-any-return]
