"""GGUF analyzer: header bounds, tensor table sanity, and chat templates (never rendered)."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.analyzers.gguf.reader import GGUFError, Header, read_header
from scanner.analyzers.gguf.template import indicators
from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.finding import Finding
from scanner.formats.interface import Format

MAX_GGML_TYPE = 41          # ggml types defined as of 2026 (GGML_TYPE_COUNT - 1)
MAX_ENTRIES = 10_000_000


class GGUFAnalyzer(Analyzer):
    name = "gguf"
    formats = frozenset({Format.GGUF})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        try:
            header = read_header(artifact.blob.open(), artifact.blob.size, ctx.limits.header_bytes, MAX_ENTRIES)
        except GGUFError as exc:
            rule = "MLS-GGF-001" if "version" in str(exc) or "magic" in str(exc) else "MLS-GGF-002"
            yield ctx.finding(rule, artifact.location.at(offset=exc.offset),
                              f"{exc}. llama.cpp's 2024 heap overflows came from headers like this; "
                              "the rest of the file was not analyzed.")
            return
        yield from self._tensors(header, artifact, ctx)
        for key, value in header.metadata.items():
            if key.startswith("tokenizer.chat_template") and isinstance(value, str):
                yield from self._template(key, value, artifact, ctx)

    @staticmethod
    def _tensors(header: Header, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        alignment = header.metadata.get("general.alignment", 32)
        data_size = artifact.blob.size - header.data_start
        for info in header.tensors:
            node = artifact.location.at(node=info.name)
            problems = []
            if len(info.dims) > 4:
                problems.append(f"{len(info.dims)} dimensions (llama.cpp allows 4)")
            count = 1
            for dim in info.dims:
                count *= dim
            if count >= 1 << 62:
                problems.append(f"element count {count} overflows 64-bit size arithmetic")
            if info.ggml_type > MAX_GGML_TYPE:
                problems.append(f"unknown ggml type {info.ggml_type}")
            if isinstance(alignment, int) and alignment > 0 and info.offset % alignment:
                problems.append(f"offset {info.offset} is not aligned to {alignment}")
            if info.offset > data_size:
                problems.append(f"offset {info.offset} lies past the {data_size}-byte data area")
            if problems:
                yield ctx.finding("MLS-GGF-003", node, "; ".join(problems))

    @staticmethod
    def _template(key: str, source: str, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        found, error = indicators(source, ctx.limits.nesting_depth * 4)
        node = artifact.location.at(node=key)
        if found:
            yield ctx.finding("MLS-GGF-010", node,
                              "template injection indicators (the template runs when a chat is formatted):\n"
                              + "\n".join(f"- {item}" for item in found[:10]))
        if error:
            yield ctx.finding("MLS-GGF-011", node, f"template does not parse as Jinja2: {error}")
