"""What sniffing returns: a format decided from the bytes, never from the file name."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Format(str, enum.Enum):
    EMPTY = "empty"
    UNKNOWN = "unknown"
    TEXT = "text"
    JSON = "json"
    # Containers and compression wrappers
    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    ZLIB = "zlib"
    ZSTD = "zstd"
    LZ4 = "lz4"
    SEVENZIP = "7z"
    RAR = "rar"
    # Code-carrying serialisations
    PICKLE = "pickle"
    NUMPY = "numpy"
    # Graph and tensor formats
    ONNX = "onnx"
    TF_SAVEDMODEL = "tf-savedmodel"
    TF_GRAPHDEF = "tf-graphdef"
    PROTOBUF = "protobuf"
    HDF5 = "hdf5"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    GGML = "ggml"
    # Native code
    ELF = "elf"
    PE = "pe"
    MACHO = "macho"


@dataclass(frozen=True)
class Sniffed:
    """The detected format, and a short human detail (e.g. ``pickle protocol 4``)."""

    format: Format
    detail: str = ""
