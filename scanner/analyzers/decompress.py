"""Bounded streaming decompression into a spooled blob, shared by zip members and wrappers.

The ratio limit is enforced on the bytes actually produced while streaming (declared sizes
lie), and so is the per-member size cap; on a breach the partial output is kept for analysis
and the breach is reported.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scanner.core.blob import Blob, SpooledBlob
from scanner.core.limits import Limits

CHUNK = 1 << 20


@dataclass
class Decompressed:
    blob: SpooledBlob
    problem: tuple[str, str] | None = None     # (rule id, message) when output is incomplete
    crc32: int = 0
    consumed: int = 0                           # compressed bytes consumed


def _make(kind: str) -> Callable[[], object]:
    return {
        "deflate": lambda: zlib.decompressobj(-15),
        "zlib": lambda: zlib.decompressobj(15),
        "gzip": lambda: zlib.decompressobj(31),
        "bzip2": bz2.BZ2Decompressor,
        "xz": lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ),
        "lzma": lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE),
    }[kind]


def decompress(source: Blob, start: int, length: int, kind: str, limits: Limits,
               multi_stream: bool = False) -> Decompressed:
    out = SpooledBlob(limits.spool_in_memory)
    result = Decompressed(out)
    engine: Any = _make(kind)()
    pos = start
    end = start + length
    cap = limits.member_size
    while pos < end:
        data = source.read_at(pos, min(CHUNK, end - pos))
        if not data:
            break
        pos += len(data)
        while True:
            room = max(1, min(CHUNK, cap - out.size + 1))
            try:
                produced = engine.decompress(data, room)
            except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
                result.problem = ("MLS-ARC-010", f"{kind} stream is corrupt after {out.size} bytes: {exc}")
                return _done(result, pos, start)
            out.write(produced)
            result.crc32 = zlib.crc32(produced, result.crc32)
            consumed = pos - start - len(getattr(engine, "unconsumed_tail", b""))
            if out.size > cap:
                result.problem = ("MLS-GEN-012", f"decompresses to more than the {cap}-byte member limit")
                return _done(result, pos, start)
            if out.size > 1 << 20 and out.size > limits.compression_ratio * max(1, consumed):
                result.problem = ("MLS-ARC-008",
                                  f"expands to {out.size} bytes from {consumed} compressed "
                                  f"(ratio over {limits.compression_ratio:g}:1): a decompression bomb")
                return _done(result, pos, start)
            if engine.eof:
                tail = engine.unused_data
                if multi_stream and tail:
                    engine = _make(kind)()
                    data = tail
                    continue
                return _done(result, pos - len(tail), start)
            if hasattr(engine, "unconsumed_tail"):  # zlib keeps capped input for us
                data = engine.unconsumed_tail
                if not data:
                    break
            elif engine.needs_input:
                break
            else:
                data = b""  # bz2/lzma hold input internally while output is capped
    result.problem = ("MLS-ARC-010", f"{kind} stream is truncated after {out.size} bytes of output")
    return _done(result, pos, start)


def _done(result: Decompressed, pos: int, start: int) -> Decompressed:
    result.consumed = pos - start
    return result
