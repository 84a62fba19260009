"""Free-text fields: metadata_props and doc_string everywhere, plus binary string attributes.

ONNX never executes them, but the pipelines around a model read them (preprocessing configs,
label maps, chat templates). Script and shell fragments, template syntax and URLs are reported;
a serialized object hidden in them (base64 pickle or zip, or raw pickle bytes in a string
attribute) is decoded and handed back to the engine as a nested artifact, so the pickle and
archive analyzers judge it like any other file.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scanner.analyzers.interface import Artifact
from scanner.analyzers.onnx.context import OnnxScan, shorten
from scanner.analyzers.onnx.operators import URL
from scanner.analyzers.onnx.walk import node_label, qualify, text
from scanner.core.blob import BytesBlob
from scanner.core.finding import Finding, Severity

SCRIPT = re.compile(
    r"<script\b|javascript:|\bimport\s+(os|subprocess|sys|socket|pty)\b|__import__\s*\(|\bsubprocess\.|"
    r"\bos\.(system|popen|exec\w*)\s*\(|\beval\s*\(|\bexec\s*\(|/bin/(ba)?sh\b|\bbash\s+-c\b|"
    r"\b(curl|wget)\s+\S+.*\|\s*(ba)?sh\b|\bpowershell(\.exe)?\b|\brm\s+-rf\b|\bnc\s+-e\b",
    re.IGNORECASE)
TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
MAGIC = ((b"\x80\x02", "pickle"), (b"\x80\x03", "pickle"), (b"\x80\x04", "pickle"),
         (b"\x80\x05", "pickle"), (b"PK\x03\x04", "zip"), (b"\x7fELF", "ELF binary"),
         (b"MZ", "PE binary"))
_MAX_TEXT = 1 << 20  # characters of one string examined by the regexes


def _payload_kind(data: bytes) -> str | None:
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    return None


@dataclass
class _Hits:
    script: list[str] = field(default_factory=list)
    template: list[str] = field(default_factory=list)
    url: list[str] = field(default_factory=list)
    long: list[str] = field(default_factory=list)
    payload: list[str] = field(default_factory=list)


class StringCheck:
    def __init__(self, scan: OnnxScan) -> None:
        self.scan = scan
        self.hits = _Hits()
        self.nested: list[Artifact] = []
        self.budget = scan.ctx.limits.header_bytes  # decoded payload bytes, all strings together

    def run(self) -> Iterator[Finding | Artifact]:
        for where, value in self.texts():
            self.inspect(where, value)
        for where, data in self.binary_attributes():
            kind = _payload_kind(data)
            if kind:
                self.payload(where, data, kind)
        yield from self.nested
        hits = self.hits
        if hits.payload:
            yield self.scan.finding("MLS-ONX-240", "embedded serialized objects (scanned as nested "
                                    f"artifacts): {shorten(hits.payload, 4)}", severity=Severity.HIGH)
        if hits.script:
            yield self.scan.finding("MLS-ONX-240", f"script or shell fragments in {shorten(hits.script, 4)}")
        if hits.template:
            yield self.scan.finding("MLS-ONX-240", f"template syntax (rendered by some pipelines) in "
                                    f"{shorten(hits.template, 4)}")
        if hits.url:
            yield self.scan.finding("MLS-ONX-240", f"URLs in {shorten(hits.url, 4)}", severity=Severity.LOW)
        if hits.long:
            yield self.scan.finding("MLS-ONX-240", f"very long opaque values in {shorten(hits.long, 4)}",
                                    severity=Severity.LOW)

    def texts(self) -> Iterator[tuple[str, str]]:
        model = self.scan.model
        yield "model doc_string", text(model.doc_string)
        for entry in model.metadata_props:
            key = text(entry.key)
            yield f"model metadata_props[{key[:80]!r}]", text(entry.value)
            yield f"model metadata_props key {key[:80]!r}", key
        for scope in self.scan.view.scopes:
            yield from self.message_texts(scope.path, scope.graph)
            for index, node in enumerate(scope.graph.node):
                yield from self.message_texts(qualify(scope.path, node_label(node, index)), node)
        for where, tensor in self.scan.view.tensors():
            yield from self.message_texts(where, tensor)

    @staticmethod
    def message_texts(where: str, message: Any) -> Iterator[tuple[str, str]]:
        if message.doc_string:
            yield f"{where} doc_string", text(message.doc_string)
        for entry in message.metadata_props:
            yield f"{where} metadata_props[{text(entry.key)[:80]!r}]", text(entry.value)

    def binary_attributes(self) -> Iterator[tuple[str, bytes]]:
        for scope, index, node in self.scan.view.nodes():
            for attr in node.attribute:
                values = ([attr.s] if attr.HasField("s") else []) + list(attr.strings)
                for i, value in enumerate(values):
                    if value[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK"):
                        yield f"{qualify(scope.path, node_label(node, index))} attribute '{text(attr.name)}'[{i}]", value

    def inspect(self, where: str, text: str) -> None:
        if not text:
            return
        if len(text) > self.scan.kb.long_string_chars:
            self.hits.long.append(f"{where} ({len(text):,} chars)")
        sample = text[:_MAX_TEXT]
        if SCRIPT.search(sample):
            self.hits.script.append(where)
        if TEMPLATE.search(sample):
            self.hits.template.append(where)
        urls = URL.findall(sample)
        if urls:
            self.hits.url.append(f"{where} ({shorten([u[:100] for u in urls], 2)})")
        for match in BASE64_RUN.finditer(sample):
            run = match.group(0)
            try:
                head = base64.b64decode(run[:16], validate=True)
            except (binascii.Error, ValueError):
                continue
            kind = _payload_kind(head)
            if kind is None:
                continue
            try:
                data = base64.b64decode(run + "=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            self.payload(f"{where} (base64)", data, kind)

    def payload(self, where: str, data: bytes, kind: str) -> None:
        self.hits.payload.append(f"{where}: {kind}, {len(data)} bytes")
        if len(data) > self.budget:
            return
        self.budget -= len(data)
        artifact = self.scan.artifact
        suffix = {"pickle": "pkl", "zip": "zip"}.get(kind, "bin")
        self.nested.append(Artifact(
            location=artifact.location.child(where), blob=BytesBlob(data), name=f"embedded.{suffix}",
            depth=artifact.depth + 1))


def check(scan: OnnxScan) -> Iterator[Finding | Artifact]:
    yield from StringCheck(scan).run()
