"""Single-stream compression wrappers (gzip, bzip2, xz, lzma, zlib): compressed joblib files and
``.tar.gz`` archives. The content is decompressed, bounded, and scanned as a nested artifact."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.analyzers.decompress import decompress
from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.finding import Finding
from scanner.formats.interface import Format

_KINDS = {Format.GZIP: "gzip", Format.BZIP2: "bzip2", Format.XZ: "xz", Format.LZMA: "lzma",
          Format.ZLIB: "zlib"}
_SUFFIXES = (".gz", ".tgz", ".bz2", ".xz", ".lzma", ".z")


def inner_name(name: str) -> str:
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            base = name[: -len(suffix)]
            return base + ".tar" if suffix == ".tgz" else base
    return name


class CompressedAnalyzer(Analyzer):
    name = "compressed"
    formats = frozenset(_KINDS)

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        from scanner.formats.sniff import sniff

        kind = _KINDS[sniff(artifact.blob).format] if artifact.format_hint is None else \
            _KINDS[artifact.format_hint.format]
        out = decompress(artifact.blob, 0, artifact.blob.size, kind, ctx.limits,
                         multi_stream=kind in ("gzip", "bzip2", "xz"))
        if out.problem:
            # keep scanning what did decompress: a payload at the start still counts
            yield ctx.finding(out.problem[0], artifact.location, out.problem[1])
        name = inner_name(artifact.name)
        yield Artifact(artifact.location.child(f"<{kind}>"), out.blob, name, artifact.depth + 1)
