"""Decide an artifact's format from its bytes.

Extensions lie (CVE-2025-1889, CVE-2025-10155): the format comes from magic bytes and structure
only. The name is used afterwards, to report an extension that disagrees with the content.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
from functools import lru_cache

from scanner.core.blob import Blob
from scanner.formats.interface import Format, Sniffed
from scanner.formats.protowire import LEN, VARINT, WireError, iter_fields

HEAD = 4096

_MAGIC: tuple[tuple[bytes, Format], ...] = (
    (b"PK\x03\x04", Format.ZIP),
    (b"PK\x05\x06", Format.ZIP),
    (b"PK\x07\x08", Format.ZIP),
    (b"\x1f\x8b", Format.GZIP),
    (b"\xfd7zXZ\x00", Format.XZ),
    (b"7z\xbc\xaf\x27\x1c", Format.SEVENZIP),
    (b"Rar!\x1a\x07", Format.RAR),
    (b"\x28\xb5\x2f\xfd", Format.ZSTD),
    (b"\x04\x22\x4d\x18", Format.LZ4),
    (b"\x93NUMPY", Format.NUMPY),
    (b"GGUF", Format.GGUF),
    (b"lmgg", Format.GGML),
    (b"fmgg", Format.GGML),
    (b"tjgg", Format.GGML),
    (b"\x89HDF\r\n\x1a\n", Format.HDF5),
    (b"\x7fELF", Format.ELF),
    (b"\xfe\xed\xfa\xce", Format.MACHO),
    (b"\xfe\xed\xfa\xcf", Format.MACHO),
    (b"\xce\xfa\xed\xfe", Format.MACHO),
    (b"\xcf\xfa\xed\xfe", Format.MACHO),
)

_ONNX_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26})
# First byte of a protobuf whose first field is a ModelProto field: writers may emit fields in
# any order and onnxruntime accepts it, so the ONNX check must not depend on field 1 coming first.
_ONNX_FIRST_TAGS = frozenset({0x08, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA, 0xD2})
# ModelProto header fields no TensorFlow protobuf has at top level (producer_version, domain,
# model_version, doc_string): enough to call a truncated prefix ONNX.
_ONNX_ONLY_HEADER = frozenset({3, 4, 5, 6})
_PICKLE_IMPORT_OPS = frozenset({"GLOBAL", "INST", "STACK_GLOBAL"})


def sniff(blob: Blob) -> Sniffed:
    """The format of ``blob``, from its content alone."""
    if blob.size == 0:
        return Sniffed(Format.EMPTY)
    head = blob.read_at(0, HEAD)
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return Sniffed(fmt)
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and len(head) > 3:
        return Sniffed(Format.BZIP2)
    if len(head) >= 512 and head[257:262] == b"ustar":
        return Sniffed(Format.TAR)
    if head[:2] == b"MZ" and _looks_like_pe(blob, head):
        return Sniffed(Format.PE)
    if head[:1] == b"\x80" and head[1:2] and 2 <= head[1] <= 5:
        return Sniffed(Format.PICKLE, f"protocol {head[1]}")
    if _looks_like_safetensors(head, blob.size):
        return Sniffed(Format.SAFETENSORS)
    if _looks_like_zlib(head):
        return Sniffed(Format.ZLIB)
    if head[:3] == b"\x5d\x00\x00" and len(head) >= 13:
        return Sniffed(Format.LZMA)
    proto = _protobuf_kind(blob, head)
    if proto is not None:
        return Sniffed(proto)
    if _looks_like_text_pickle(head, blob.size):
        return Sniffed(Format.PICKLE, "protocol 0/1")
    if head[:1] == b"\x80":
        # A PROTO opcode with a version CPython does not know: still a pickle a loader rejects,
        # but reported as one so the malformation is analysed, not passed as "unknown".
        return Sniffed(Format.PICKLE, f"unknown protocol {head[1] if len(head) > 1 else '?'}")
    text = _as_text(head, complete=blob.size <= HEAD)
    if text is not None:
        stripped = text.lstrip()
        if stripped[:1] in ("{", "[") and _is_json(blob):
            return Sniffed(Format.JSON)
        return Sniffed(Format.TEXT)
    if _has_zip_directory(blob):
        # Another file with a zip appended (a polyglot): loaders that read zips from the end
        # (PyTorch, Python) open it as an archive, so it is walked as one.
        return Sniffed(Format.ZIP, "zip appended to other data")
    return Sniffed(Format.UNKNOWN)


def _has_zip_directory(blob: Blob) -> bool:
    tail_len = min(blob.size, 22 + 0xFFFF)
    return b"PK\x05\x06" in blob.read_at(blob.size - tail_len, tail_len)


def _looks_like_pe(blob: Blob, head: bytes) -> bool:
    if len(head) < 0x40:
        return False
    offset = struct.unpack_from("<I", head, 0x3C)[0]
    return blob.read_at(offset, 4) == b"PE\x00\x00"


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # 8-byte little-endian header length, then a JSON object. The length may be absurd: that
    # is for the analyzer to report, so only the '{' is required here.
    if len(head) < 10 or size < 10:
        return False
    if head[8:9] == b"{":
        return True
    # a non-object JSON header is still a (malformed) safetensors file if the length fits
    return head[8:9] == b"[" and struct.unpack_from("<Q", head)[0] <= size - 8


def _looks_like_zlib(head: bytes) -> bool:
    if len(head) < 2:
        return False
    cmf, flg = head[0], head[1]
    return cmf == 0x78 and (cmf * 256 + flg) % 31 == 0


def _protobuf_kind(blob: Blob, head: bytes) -> Format | None:
    """ONNX, TF SavedModel or GraphDef, told apart by their top-level field numbers."""
    if not head or (head[0] not in (0x08, 0x0A, 0x12) and head[0] not in _ONNX_FIRST_TAGS):
        return None
    numbers: list[tuple[int, int]] = []
    try:
        for field in iter_fields(blob, max_fields=100_000):
            numbers.append((field.number, field.wire_type))
    except WireError:
        # A truncated ONNX file is still ONNX to report as such (the analyzer says it is cut off);
        # anything else that stops parsing is not a protobuf we know.
        seen = {n for n, _ in numbers}
        if (numbers and seen <= _ONNX_FIELDS and dict(numbers).get(1) == VARINT
                and seen & _ONNX_ONLY_HEADER):
            return Format.ONNX
        return None
    seen = {n for n, _ in numbers}
    kinds = dict(numbers)
    if seen <= _ONNX_FIELDS and kinds.get(1) == VARINT and (7 in seen or 8 in seen):
        return Format.ONNX
    if kinds.get(1) == VARINT and kinds.get(7) == LEN and kinds.get(8) == LEN:
        # ir_version + graph + opset_import plus fields this onnx does not know: a newer or crafted
        # ModelProto that runtimes still load (unknown fields are skipped); the analyzer reports them.
        return Format.ONNX
    if seen <= {1, 2} and kinds.get(1) == VARINT and kinds.get(2) == LEN:
        return Format.TF_SAVEDMODEL
    if seen <= {1, 2, 3, 4} and kinds.get(1) == LEN and (4 in seen or 2 in seen or len(numbers) > 1):
        return Format.TF_GRAPHDEF
    return None


@lru_cache(maxsize=1)
def _opcode_codes() -> frozenset[int]:
    return frozenset(ord(op.code) for op in pickletools.opcodes)


def _looks_like_text_pickle(head: bytes, size: int) -> bool:
    """Protocol 0/1 pickles have no header: parse a prefix and require real pickle structure.

    Text files rarely parse as opcodes for long. A prefix that parses to STOP, or that parses
    without error through an import opcode (GLOBAL/INST) to the end of the prefix, is a pickle.
    """
    if head[0] not in _opcode_codes():
        return False
    seen_import = False
    count = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            count += 1
            if opcode.name in _PICKLE_IMPORT_OPS:
                seen_import = True
            if opcode.name == "STOP":
                return count >= 2  # a value then STOP at least
    except Exception:  # noqa: BLE001 - any parse error means "not a clean prefix"
        # A payload then deliberate garbage (nullifAI) is still a pickle to the loader.
        return seen_import and count >= 3
    return seen_import


def _as_text(head: bytes, complete: bool) -> str | None:
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the prefix is still text.
        if not complete and exc.start >= len(head) - 3:
            return head[: exc.start].decode("utf-8", errors="strict")
        return None


def _is_json(blob: Blob, cap: int = 8 << 20) -> bool:
    if blob.size > cap:
        return True  # too large to confirm cheaply; JSON-looking text is reported as JSON
    try:
        json.loads(blob.read_at(0, blob.size))
    except (ValueError, RecursionError):
        return False
    return True
