"""Random-access byte sources that never hold a whole model in memory.

Analyzers read through a :class:`Blob`: a top-level file (read with ``pread`` on one open file
descriptor), a window into a parent blob (a stored archive member, no copy), or a spooled
temporary file (a decompressed member, in memory up to a limit, then on disk).

:class:`HashingFileBlob` makes "the bytes analyzed are the bytes hashed" true: analysis and
hashing read the same descriptor, sequential analysis reads feed the digest as they happen (each
byte is read once for both), and :meth:`HashingFileBlob.finish` hashes whatever analysis did
not touch.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from abc import ABC, abstractmethod
from typing import BinaryIO

CHUNK = 4 << 20
SMALL_BLOB = 1 << 20


class Blob(ABC):
    """A byte source of known size with positional reads."""

    size: int

    @abstractmethod
    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer only at the end of the blob)."""

    def open(self, buffer_size: int = 1 << 20) -> BinaryIO:
        """A seekable, buffered file-like view starting at offset 0. A small blob is read in
        one call into memory: cheaper than a buffered reader's per-call overhead, and bounded."""
        if self.size <= SMALL_BLOB:
            return io.BytesIO(self.read_at(0, self.size))
        return io.BufferedReader(BlobReader(self), buffer_size=buffer_size)  # type: ignore[return-value]

    def slice(self, start: int, length: int) -> Blob:
        return SliceBlob(self, start, length)

    def close(self) -> None:  # noqa: B027 - most blobs own nothing; subclasses that do override
        """Release resources (temporary files); reading afterwards is an error."""


class BlobReader(io.RawIOBase):
    def __init__(self, blob: Blob) -> None:
        self._blob = blob
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._blob.size + offset
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        view = memoryview(buffer)
        data = self._blob.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class BytesBlob(Blob):
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


class SliceBlob(Blob):
    """A window of a parent blob: a stored archive member is read in place, never copied."""

    def __init__(self, parent: Blob, start: int, length: int) -> None:
        self._parent = parent
        self._start = start
        self.size = max(0, min(length, parent.size - start))

    def read_at(self, offset: int, length: int) -> bytes:
        if offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        return self._parent.read_at(self._start + offset, length)


class FileBlob(Blob):
    """A file read with ``pread`` on a single descriptor (no shared file position)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.stat_before = os.fstat(self.fd)
        self.size = self.stat_before.st_size

    def read_at(self, offset: int, length: int) -> bytes:
        if offset >= self.size or length <= 0:
            return b""
        return os.pread(self.fd, min(length, self.size - offset), offset)

    def changed_since_open(self) -> bool:
        """True when the file was modified in place while it was being scanned."""
        now = os.fstat(self.fd)
        before = self.stat_before
        return (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HashingFileBlob(FileBlob):
    """A file blob that computes digests over exactly the bytes it serves.

    The digest advances whenever a read reaches the hashed prefix; :meth:`finish` hashes the
    rest in large chunks. Reads never re-open the path, so a file swapped on disk mid-scan is
    not what gets hashed or analyzed: both see the original inode.
    """

    def __init__(self, path: str | os.PathLike[str], algorithms: tuple[str, ...] = ("sha256",)) -> None:
        super().__init__(path)
        self._hashers = [hashlib.new(name) for name in algorithms]
        self._algorithms = algorithms
        self._hashed_upto = 0

    def _feed(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset <= self._hashed_upto < end:
            fresh = memoryview(data)[self._hashed_upto - offset :]
            for hasher in self._hashers:
                hasher.update(fresh)
            self._hashed_upto = end

    def read_at(self, offset: int, length: int) -> bytes:
        data = super().read_at(offset, length)
        self._feed(offset, data)
        return data

    def finish(self) -> dict[str, str]:
        """Hash the bytes analysis did not read; return hex digests by algorithm."""
        # sized to what is left: most small files were read whole by analysis already
        buffer = bytearray(max(0, min(CHUNK, self.size - self._hashed_upto)))
        view = memoryview(buffer)
        while buffer and self._hashed_upto < self.size:
            got = os.preadv(self.fd, [buffer], self._hashed_upto)
            if got <= 0:
                break  # truncated under us; changed_since_open() reports it
            for hasher in self._hashers:
                hasher.update(view[:got])
            self._hashed_upto += got
        return {name: h.hexdigest() for name, h in zip(self._algorithms, self._hashers, strict=True)}


class SpooledBlob(Blob):
    """Bytes written once (a decompressed member), kept in memory up to a limit, then on disk."""

    def __init__(self, max_in_memory: int) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=max_in_memory, prefix="mlscan-")
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.seek(0, io.SEEK_END)
        self._file.write(data)
        self.size += len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(max(0, min(length, self.size - offset)))

    def close(self) -> None:
        self._file.close()
