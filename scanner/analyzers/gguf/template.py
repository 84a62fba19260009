"""Chat-template injection checks (CVE-2024-34359). The template is parsed with Jinja2's parser
when available — parsing builds an AST and never renders — and the AST is searched for the
moves a sandbox escape needs: underscore attributes, the ``attr`` filter, and strings assembled
into dunder names. Without Jinja2 a conservative text scan is used."""

from __future__ import annotations

import re
from collections.abc import Iterator

DUNDER = re.compile(r"__\w+__")
TEXT_SIGNALS = (re.compile(r"\.\s*_\w*"), re.compile(r"\|\s*attr\b"), re.compile(r"\[\s*['\"]_"),
                DUNDER)


def _const_strings(node) -> list[str]:  # type: ignore[no-untyped-def]
    from jinja2 import nodes  # safe: AST node classes only; templates are parsed, never rendered

    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (nodes.Concat,)):
        return ["".join(s for child in node.nodes for s in _const_strings(child))]
    if isinstance(node, (nodes.Add,)):
        return ["".join(_const_strings(node.left) + _const_strings(node.right))]
    return []


def indicators(source: str, max_depth: int = 200) -> tuple[list[str], str | None]:
    """(injection indicators, parse error). An empty list means nothing suspicious."""
    try:
        from jinja2 import Environment, nodes  # safe: Environment.parse builds an AST, never renders
        from jinja2.exceptions import TemplateSyntaxError  # safe: exception type only
    except ImportError:
        return [f"text pattern {p.pattern!r}" for p in TEXT_SIGNALS if p.search(source)], None
    try:
        tree = Environment(extensions=["jinja2.ext.loopcontrols"]).parse(source)
    except (TemplateSyntaxError, RecursionError, MemoryError) as exc:
        return [f"text pattern {p.pattern!r}" for p in TEXT_SIGNALS if p.search(source)], str(exc)[:200]
    found: list[str] = []
    for node in _walk(tree, max_depth):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            found.append(f"attribute access .{node.attr} (line {node.lineno})")
        elif isinstance(node, nodes.Getitem):
            for text in _const_strings(node.arg):
                if text.startswith("_"):
                    found.append(f"item access [{text!r}] (line {node.lineno})")
        elif isinstance(node, nodes.Filter) and node.name in ("attr", "map") and any(
                text.startswith("_") or node.name == "attr"
                for arg in [*node.args, *(kw.value for kw in node.kwargs)] for text in _const_strings(arg)):
            found.append(f"|{node.name} filter reaching {', '.join(_const_strings(node.args[0]) if node.args else []) or 'an attribute'} (line {node.lineno})")
        elif isinstance(node, (nodes.Concat, nodes.Add)):
            for text in _const_strings(node):
                if DUNDER.search(text):
                    found.append(f"string assembled into {DUNDER.search(text).group(0)} (line {node.lineno})")  # type: ignore[union-attr]
    return found, None


def _walk(root, max_depth: int) -> Iterator:  # type: ignore[no-untyped-def]
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node
        if depth < max_depth:
            stack.extend((child, depth + 1) for child in node.iter_child_nodes())
