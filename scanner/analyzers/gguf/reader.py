"""A bounded GGUF header reader. Every count and length is checked against the bytes that
remain before it is used (the 2024 llama.cpp heap overflows came from trusting them), and
nothing is allocated per claimed element beyond a small cap."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

# value type -> (struct format, size); 8 = string, 9 = array
SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
           6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
STRING, ARRAY = 8, 9
KEEP_ARRAY_ITEMS = 64      # array elements kept for analysis; the rest are skipped by seeking
MIN_KV_BYTES = 8 + 4 + 1   # empty key, type, 1-byte value
MIN_TENSOR_BYTES = 8 + 4 + 4 + 8


class GGUFError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


@dataclass
class TensorInfo:
    name: str
    dims: list[int]
    ggml_type: int
    offset: int


@dataclass
class Header:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    data_start: int = 0


class Reader:
    def __init__(self, stream: BinaryIO, size: int, max_string: int) -> None:
        self.stream = stream
        self.size = size
        self.max_string = max_string
        self.u64_counts = True

    def remaining(self) -> int:
        return self.size - self.stream.tell()

    def take(self, n: int) -> bytes:
        at = self.stream.tell()
        if n > self.remaining():
            raise GGUFError(f"needs {n} bytes but only {self.remaining()} remain", at)
        return self.stream.read(n)

    def scalar(self, fmt: str, size: int) -> Any:
        return struct.unpack(fmt, self.take(size))[0]

    def count(self) -> int:
        return self.scalar("<Q", 8) if self.u64_counts else self.scalar("<I", 4)

    def string(self) -> str:
        at = self.stream.tell()
        length = self.count()
        if length > self.remaining():
            raise GGUFError(f"string length {length} exceeds the {self.remaining()} bytes left", at)
        if length > self.max_string:
            raise GGUFError(f"string length {length} exceeds the {self.max_string}-byte limit", at)
        return self.take(length).decode("utf-8", errors="replace")

    def value(self, vtype: int, depth: int = 0) -> Any:
        at = self.stream.tell()
        if vtype in SCALARS:
            return self.scalar(*SCALARS[vtype])
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            if depth > 4:
                raise GGUFError("arrays nested too deeply", at)
            item_type = self.scalar("<I", 4)
            count = self.count()
            min_item = SCALARS[item_type][1] if item_type in SCALARS else 8 if item_type in (STRING, ARRAY) else 0
            if min_item == 0:
                raise GGUFError(f"unknown array element type {item_type}", at)
            if count * min_item > self.remaining():
                raise GGUFError(f"array claims {count} elements, more than the {self.remaining()} bytes left hold", at)
            items = []
            for i in range(count):
                if i < KEEP_ARRAY_ITEMS or item_type in (STRING, ARRAY):
                    item = self.value(item_type, depth + 1)
                    if i < KEEP_ARRAY_ITEMS:
                        items.append(item)
                else:
                    self.stream.seek(min_item * (count - i), 1)
                    break
            return items
        raise GGUFError(f"unknown value type {vtype}", at)


def read_header(stream: BinaryIO, size: int, max_string: int, max_entries: int) -> Header:
    reader = Reader(stream, size, max_string)
    if reader.take(4) != b"GGUF":
        raise GGUFError("bad magic", 0)
    version = reader.scalar("<I", 4)
    if version not in (1, 2, 3):
        raise GGUFError(f"unknown GGUF version {version}", 4)
    reader.u64_counts = version >= 2
    n_tensors, n_kv = reader.count(), reader.count()
    if n_kv > max_entries or n_kv * MIN_KV_BYTES > reader.remaining():
        raise GGUFError(f"header claims {n_kv} metadata entries; the file cannot hold them", 8)
    if n_tensors > max_entries or n_tensors * MIN_TENSOR_BYTES > reader.remaining():
        raise GGUFError(f"header claims {n_tensors} tensors; the file cannot hold them", 8)
    header = Header(version)
    for _ in range(n_kv):
        key = reader.string()
        header.metadata[key] = reader.value(reader.scalar("<I", 4))
    for _ in range(n_tensors):
        name = reader.string()
        at = stream.tell()
        n_dims = reader.scalar("<I", 4)
        if n_dims > 8:
            raise GGUFError(f"tensor {name!r} claims {n_dims} dimensions", at)
        dims = [reader.count() for _ in range(n_dims)]
        header.tensors.append(TensorInfo(name, dims, reader.scalar("<I", 4), reader.scalar("<Q", 8)))
    alignment = header.metadata.get("general.alignment", 32)
    alignment = alignment if isinstance(alignment, int) and alignment > 0 else 32
    header.data_start = -(-stream.tell() // alignment) * alignment
    return header
