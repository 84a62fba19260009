"""A streaming pickle opcode reader that never unpickles.

It decodes opcodes and their arguments the way CPython's unpickler reads them, from a buffered
stream, so a multi-gigabyte pickle is read once in bounded memory: large string and bytes
arguments are skipped by seeking and only a short prefix is kept.
"""

from __future__ import annotations

import pickletools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

#: bytes of a string/bytes argument kept for analysis; the rest is skipped, not read
KEEP_BYTES = 64 * 1024


class PickleSyntaxError(ValueError):
    """The stream is not a valid pickle at ``offset`` (what a loader would raise on)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


# not frozen: frozen dataclasses set fields through object.__setattr__, measurable at
# millions of opcodes; nothing mutates an Op after the reader yields it
@dataclass(slots=True)
class Op:
    name: str
    arg: object
    offset: int        # where the opcode byte is
    end: int           # first byte after the opcode and its argument
    truncated: bool = False   # argument longer than KEEP_BYTES: arg holds only a prefix


def _readline(stream: BinaryIO, offset: int) -> bytes:
    line = stream.readline(KEEP_BYTES)
    if not line.endswith(b"\n"):
        raise PickleSyntaxError("unterminated line argument", offset)
    return line[:-1]


def _fixed(fmt: str) -> Callable[[BinaryIO, int], object]:
    size = struct.calcsize(fmt)

    def read(stream: BinaryIO, offset: int) -> object:
        data = stream.read(size)
        if len(data) != size:
            raise PickleSyntaxError("truncated argument", offset)
        return struct.unpack(fmt, data)[0]

    return read


def _counted(fmt: str) -> Callable[[BinaryIO, int], tuple[bytes, int]]:
    """Length-prefixed data: returns (kept prefix, declared length); skips the rest."""
    size_of = _fixed(fmt)

    def read(stream: BinaryIO, offset: int) -> tuple[bytes, int]:
        length = int(size_of(stream, offset))  # type: ignore[call-overload]
        if length < 0:
            raise PickleSyntaxError("negative length", offset)
        kept = stream.read(min(length, KEEP_BYTES))
        if len(kept) < min(length, KEEP_BYTES):
            raise PickleSyntaxError(f"argument declares {length} bytes but the stream ends", offset)
        if length > KEEP_BYTES:
            skip = length - KEEP_BYTES
            here = stream.tell()
            stream.seek(skip, 1)
            # seek past the end succeeds silently; check there really were bytes
            stream.seek(here + skip - 1)
            if not stream.read(1):
                raise PickleSyntaxError(f"argument declares {length} bytes but the stream ends", offset)
        return kept, length

    return read


def _long(fmt: str) -> Callable[[BinaryIO, int], object]:
    counted = _counted(fmt)

    def read(stream: BinaryIO, offset: int) -> object:
        data, length = counted(stream, offset)
        if length > 64:
            return f"<{length}-byte integer>"
        return int.from_bytes(data, "little", signed=True)

    return read


def _decimal(stream: BinaryIO, offset: int) -> object:
    line = _readline(stream, offset)
    text = line.rstrip(b"L")
    if text in (b"00", b"01"):
        return text == b"01"
    try:
        return int(text)
    except ValueError:
        raise PickleSyntaxError(f"invalid integer {line[:40]!r}", offset) from None


def _float(stream: BinaryIO, offset: int) -> object:
    line = _readline(stream, offset)
    try:
        return float(line)
    except ValueError:
        raise PickleSyntaxError(f"invalid float {line[:40]!r}", offset) from None


def _stringnl(stream: BinaryIO, offset: int) -> object:
    line = _readline(stream, offset)
    if len(line) >= 2 and line[:1] == line[-1:] and line[:1] in (b"'", b'"'):
        return line[1:-1].decode("latin-1")
    raise PickleSyntaxError("STRING argument is not quoted", offset)


def _unicodenl(stream: BinaryIO, offset: int) -> object:
    return _readline(stream, offset).decode("raw_unicode_escape", errors="replace")


def _pair(stream: BinaryIO, offset: int) -> object:
    module = _readline(stream, offset).decode("utf-8", errors="replace")
    name = _readline(stream, offset).decode("utf-8", errors="replace")
    return (module, name)


def _text(fmt: str, encoding: str) -> Callable[[BinaryIO, int], object]:
    counted = _counted(fmt)

    def read(stream: BinaryIO, offset: int) -> object:
        data, length = counted(stream, offset)
        return data.decode(encoding, errors="replace"), length

    return read


def _raw(fmt: str) -> Callable[[BinaryIO, int], object]:
    counted = _counted(fmt)

    def read(stream: BinaryIO, offset: int) -> object:
        return counted(stream, offset)

    return read


_ARG_READERS: dict[str, Callable[[BinaryIO, int], object]] = {
    "uint1": _fixed("<B"), "uint2": _fixed("<H"), "int4": _fixed("<i"), "uint4": _fixed("<I"),
    "uint8": _fixed("<Q"), "float8": _fixed(">d"),
    "long1": _long("<B"), "long4": _long("<i"),
    "string1": _text("<B", "latin-1"), "string4": _text("<i", "latin-1"),
    "unicodestring1": _text("<B", "utf-8"), "unicodestring4": _text("<I", "utf-8"),
    "unicodestring8": _text("<Q", "utf-8"),
    "bytes1": _raw("<B"), "bytes4": _raw("<I"), "bytes8": _raw("<Q"), "bytearray8": _raw("<Q"),
    "decimalnl_short": _decimal, "decimalnl_long": _decimal, "floatnl": _float,
    "stringnl": _stringnl, "stringnl_noescape": _unicodenl,
    "stringnl_noescape_pair": _pair, "unicodestringnl": _unicodenl,
}

# opcode byte -> (name, argument reader or None)
DISPATCH: dict[int, tuple[str, Callable[[BinaryIO, int], object] | None]] = {
    ord(op.code): (op.name, _ARG_READERS[op.arg.name] if op.arg is not None else None)
    for op in pickletools.opcodes
}


def read_ops(stream: BinaryIO, start: int = 0) -> Iterator[Op]:
    """Yield opcodes until STOP (inclusive). Raises PickleSyntaxError at a malformation, after
    yielding everything before it, so callers keep what a loader would already have run."""
    while True:
        offset = stream.tell()
        code = stream.read(1)
        if not code:
            raise PickleSyntaxError("stream ends without STOP", offset)
        entry = DISPATCH.get(code[0])
        if entry is None:
            raise PickleSyntaxError(f"unknown opcode 0x{code[0]:02x}", offset)
        name, reader = entry
        arg = reader(stream, offset) if reader is not None else None
        truncated = isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], int) \
            and isinstance(arg[0], (bytes, str)) and arg[1] > KEEP_BYTES
        yield Op(name, arg, offset, stream.tell(), truncated)
        if name == "STOP":
            return
