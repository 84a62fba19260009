"""Minimal protobuf wire-format reading: enough to sniff and to walk messages without schemas.

Used to tell ONNX from TensorFlow protobufs by their top-level fields, and by analyzers that
parse TensorFlow graphs without TensorFlow. Every read is bounds-checked against the blob.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scanner.core.blob import Blob

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    """The bytes are not valid protobuf wire format at this position."""


@dataclass(frozen=True)
class Field:
    number: int
    wire_type: int
    value: int          # the varint / fixed value, or the payload length for LEN fields
    offset: int         # where the payload starts (LEN) or the value was read


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); at most 10 bytes as protobuf allows."""
    result = shift = 0
    for i in range(10):
        if pos + i >= len(data):
            raise WireError("truncated varint")
        byte = data[pos + i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos + i + 1
        shift += 7
    raise WireError("varint longer than 10 bytes")


def iter_fields(blob: Blob, start: int = 0, end: int | None = None,
                max_fields: int = 1_000_000) -> Iterator[Field]:
    """Walk the fields of one message in ``blob[start:end]``, skipping LEN payloads unread."""
    end = blob.size if end is None else min(end, blob.size)
    pos = start
    count = 0
    while pos < end:
        count += 1
        if count > max_fields:
            raise WireError(f"more than {max_fields} fields")
        head = blob.read_at(pos, 20)
        key, after = decode_varint(head, 0)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == VARINT:
            value, used = decode_varint(head, after)
            yield Field(number, wire_type, value, pos + after)
            pos += used
        elif wire_type == LEN:
            length, used = decode_varint(head, after)
            payload = pos + used
            if payload + length > end:
                raise WireError(f"field {number} length {length} runs past the message end")
            yield Field(number, wire_type, length, payload)
            pos = payload + length
        elif wire_type == I64:
            yield Field(number, wire_type, int.from_bytes(head[after:after + 8], "little"), pos + after)
            pos += after + 8
        elif wire_type == I32:
            yield Field(number, wire_type, int.from_bytes(head[after:after + 4], "little"), pos + after)
            pos += after + 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if pos != end:
        raise WireError("message overruns its end")
