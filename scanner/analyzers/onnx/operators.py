"""Operators that bring code or I/O into the model: custom domains, network invokers, callbacks.

ONNX itself cannot run code, but a node in a domain the runtime does not implement makes the
host load a native custom-op library, and some published custom ops call URLs stored in the
model. Calls to model-local functions are not custom operators: their bodies are ordinary
scopes that every check walks.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scanner.analyzers.onnx.context import OnnxScan, shorten
from scanner.analyzers.onnx.external import location_problem
from scanner.analyzers.onnx.knowledge import normalise_domain
from scanner.analyzers.onnx.walk import node_label, qualify, text
from scanner.core.finding import Finding, Severity

NATIVE_SUFFIX = re.compile(r"\.(so(\.\d+)*|dll|dylib)$", re.IGNORECASE)
NATIVE_NAME = re.compile(r"[\w.\-/\\]+\.(?:so(?:\.\d+)*|dll|dylib)\b", re.IGNORECASE)
URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)
_SIBLING_SCAN_LIMIT = 10_000
_STRING = 3  # AttributeProto.STRING
_STRINGS = 8  # AttributeProto.STRINGS


def attribute_strings(node: Any) -> Iterator[tuple[str, str]]:
    """(attribute name, decoded text) for string attributes, truncated for evidence."""
    for attr in node.attribute:
        values = [attr.s] if attr.HasField("s") else []
        values.extend(attr.strings)
        for value in values:
            yield text(attr.name), value[:4096].decode("utf-8", "replace")


def _internal_host(url: str) -> bool:
    """True for URLs aimed at loopback, link-local (cloud metadata) or private addresses."""
    import ipaddress

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme == "file" or host in ("localhost", "metadata.google.internal"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local or address.is_private


def native_siblings(model_path: Path | None) -> list[str]:
    """Native libraries in the model's directory (top-level files only)."""
    if model_path is None:
        return []
    found: list[str] = []
    try:
        with os.scandir(model_path.parent) as entries:
            for i, entry in enumerate(entries):
                if i >= _SIBLING_SCAN_LIMIT:
                    break
                if NATIVE_SUFFIX.search(entry.name) and entry.is_file(follow_symlinks=False):
                    found.append(entry.name)
    except OSError:
        return []
    return sorted(found)


def check(scan: OnnxScan) -> Iterator[Finding]:
    kb = scan.kb
    local = scan.view.local_functions()
    custom: dict[str, Counter[str]] = defaultdict(Counter)
    first_node: dict[str, str] = {}
    runtime: dict[str, Counter[str]] = defaultdict(Counter)
    unknown_standard: Counter[str] = Counter()
    library_refs: set[str] = set()
    for scope, index, node in scan.view.nodes():
        domain = normalise_domain(node.domain)
        op = text(node.op_type)
        label = qualify(scope.path, node_label(node, index))
        if (domain, op) in local:
            continue
        if domain in kb.standard_domains:
            if not _schema_exists(op, domain):
                unknown_standard[f"{domain or 'ai.onnx'}::{op}"] += 1
            continue
        strings = list(attribute_strings(node))
        for _attr_name, value in strings:
            library_refs.update(m.group(0) for m in NATIVE_NAME.finditer(value))
        yield from _special_ops(scan, domain, op, label, node, strings)
        if domain in kb.runtime_domains:
            runtime[domain][op] += 1
        else:
            custom[domain][op] += 1
            first_node.setdefault(domain, label)
    for domain, ops in sorted(runtime.items()):
        yield scan.finding("MLS-ONX-213", f"domain {domain!r}: {_histogram(ops)}; implemented inside "
                           "onnxruntime, nothing native is loaded from the model")
    for domain, ops in sorted(custom.items()):
        library = kb.library_domains.get(domain)
        if library:
            evidence = (f"domain {domain!r} ({library}) needs a separately installed native library; "
                        f"ops: {_histogram(ops)}")
            yield scan.finding("MLS-ONX-210", evidence, first_node[domain], Severity.MEDIUM)
        else:
            evidence = (f"domain {domain!r} is not implemented by any ONNX runtime; the host must "
                        f"register a native custom-op library for it; ops: {_histogram(ops)}")
            yield scan.finding("MLS-ONX-210", evidence, first_node[domain])
    if unknown_standard:
        yield scan.finding("MLS-ONX-230", "operators that do not exist in the standard ONNX domains "
                           f"(runtimes reject the model or resolve them elsewhere): "
                           f"{_histogram(unknown_standard)}")
    yield from _native_libraries(scan, custom, library_refs)


def _special_ops(scan: OnnxScan, domain: str, op: str, label: str, node: Any,
                 strings: list[tuple[str, str]]) -> Iterator[Finding]:
    kb = scan.kb
    for rule in kb.network_ops:
        if rule.matches(domain, op):
            targets = [f"{n}={t[:200]!r}" for n, t in strings if n in rule.attributes]
            urls = [t for n, t in strings for t in URL.findall(t)]
            severity = rule.severity
            if any(_internal_host(u) for u in urls):
                severity = Severity.CRITICAL
            yield scan.finding("MLS-ONX-211", f"{domain}::{op} {rule.why}"
                               + (f"; {', '.join(targets)}" if targets else ""), label, severity)
            return
    for rule in kb.python_ops:
        if rule.matches(domain, op):
            names = [f"{n}={t[:120]!r}" for n, t in strings]
            yield scan.finding("MLS-ONX-214", f"{domain}::{op} {rule.why}"
                               + (f"; {shorten(names, 4)}" if names else ""), label)
            return
    if kb.ep_context.matches(domain, op):
        yield from _ep_context(scan, label, node)
        return
    if domain not in kb.runtime_domains:
        urls = [u for _, t in strings for u in URL.findall(t)]
        if urls:
            severity = Severity.CRITICAL if any(_internal_host(u) for u in urls) else Severity.HIGH
            yield scan.finding("MLS-ONX-211", f"custom operator {domain}::{op} is configured with "
                               f"URL(s) {shorten([u[:200] for u in urls], 3)}", label, severity)


def _ep_context(scan: OnnxScan, label: str, node: Any) -> Iterator[Finding]:
    kb = scan.kb
    mode = 1
    path: str | None = None
    size = 0
    for attr in node.attribute:
        if text(attr.name) == kb.ep_mode_attribute:
            mode = attr.i
        elif text(attr.name) == kb.ep_path_attribute:
            size = len(attr.s)
            path = attr.s[:4096].decode("utf-8", "replace")
    if mode == 0 and path is not None:
        problem = location_problem(path, kb.device_names)
        if problem:
            yield scan.finding("MLS-ONX-201", f"EPContext {kb.ep_path_attribute} {path[:200]!r} "
                               f"{problem}", label)
            return
        yield scan.finding("MLS-ONX-215", f"EPContext loads a compiled context binary from the "
                           f"sidecar file {path[:200]!r}", label)
    else:
        yield scan.finding("MLS-ONX-215", f"EPContext embeds a compiled context binary of {size} "
                           "bytes", label)


def _native_libraries(scan: OnnxScan, custom: dict[str, Counter[str]],
                      library_refs: set[str]) -> Iterator[Finding]:
    for _where, _key, value in metadata_strings(scan.model):
        library_refs.update(m.group(0) for m in NATIVE_NAME.finditer(value[:4096]))
    siblings = native_siblings(scan.artifact.path)
    if custom and siblings:
        yield scan.finding("MLS-ONX-212", f"the model needs custom-op domains {shorten(sorted(custom))} "
                           f"and native libraries ship next to it: {shorten(siblings)}; registering "
                           "them runs their code in the host")
    elif library_refs:
        present = [r for r in library_refs if os.path.basename(r.replace("\\", "/")) in siblings]
        severity = None if present else Severity.MEDIUM
        yield scan.finding("MLS-ONX-212", f"the model names native libraries {shorten(sorted(library_refs))}"
                           + (f"; present next to it: {shorten(present)}" if present else ""),
                           severity=severity)


def metadata_strings(model: Any) -> Iterator[tuple[str, str, str]]:
    """(where, key, value) for model- and graph-level metadata_props."""
    for entry in model.metadata_props:
        yield "model metadata_props", text(entry.key), text(entry.value)
    for entry in model.graph.metadata_props:
        yield "graph metadata_props", text(entry.key), text(entry.value)


def _histogram(ops: Counter[str]) -> str:
    items = [f"{op}×{n}" if n > 1 else op for op, n in sorted(ops.items())]
    return shorten(items, 12)


_SCHEMA_CACHE: dict[tuple[str, str], bool] = {}


def _schema_exists(op: str, domain: str) -> bool:
    key = (op, domain)
    if key not in _SCHEMA_CACHE:
        import onnx.defs

        _SCHEMA_CACHE[key] = bool(onnx.defs.has(op, domain))
    return _SCHEMA_CACHE[key]
