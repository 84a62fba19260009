"""External data references: the ONNX path-traversal family (CVE-2022-25882, CVE-2024-27318 ...).

A tensor whose ``data_location`` is EXTERNAL names a file (``location``) plus ``offset`` and
``length``; loaders join the location to the model directory and read it, and re-saving a
loaded model writes there. Every fix in onnx so far closed one spelling of "outside the model
directory" and missed another, so the checks are on the string (absolute, ``..`` anywhere,
drive, UNC, URL, device, NUL) *and*, for a model scanned in place, on the file system (links
leaving the directory, hard links, missing files, offsets beyond the file, checksums).

Nothing is read from the external file except, when a checksum is present, the bytes it covers.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.analyzers.onnx.context import OnnxScan, shorten
from scanner.analyzers.onnx.walk import text
from scanner.core.finding import Finding, Severity

EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_DRIVE = re.compile(r"^[A-Za-z]:")
_DIGITS = re.compile(r"^[0-9]{1,20}$")

# Bits per element of fixed-size data types (TensorProto.DataType), for expected byte counts.
ELEMENT_BITS = {
    1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64,
    15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2,
    27: 6, 28: 6,
}


def expected_bytes(tensor: Any) -> int | None:
    """Bytes the tensor's dims and type require, or None (strings, bad dims, unknown type)."""
    bits = ELEMENT_BITS.get(tensor.data_type)
    if bits is None or any(d < 0 for d in tensor.dims):
        return None
    count = 1
    for d in tensor.dims:
        count *= d
    return (count * bits + 7) // 8


def location_problem(location: str, device_names: frozenset[str]) -> str | None:
    """Why ``location`` can name a file outside the model directory, or None."""
    if "\x00" in location:
        return "contains a NUL byte (C loaders truncate the path there)"
    text = location.replace("\\", "/")
    if text.startswith("//"):
        return "is a UNC/network path"
    if text.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(text):
        return "names a drive (absolute Windows path)"
    if _SCHEME.match(text) and "://" in text:
        return "is a URL"
    if ":" in text:
        return "contains ':' (URL scheme, drive or NTFS alternate data stream)"
    parts = text.split("/")
    if ".." in parts:
        return "contains a '..' segment"
    for part in parts:
        stem = part.split(".", 1)[0].rstrip(" ").upper()
        if stem in device_names:
            return f"names the device {part!r}"
    if text.startswith("~"):
        return "starts with '~' (home-directory expansion in some loaders)"
    return None


@dataclass
class _Issue:
    rule: str
    severity: Severity | None
    message: str
    tensors: list[str]


class ExternalDataCheck:
    """Collects problems over all tensors, then reports each distinct problem once."""

    def __init__(self, scan: OnnxScan) -> None:
        self.scan = scan
        self.kb = scan.kb
        self.issues: dict[tuple[str, str], _Issue] = {}
        model_path = scan.artifact.path
        self.base: Path | None = model_path.parent if model_path is not None else None
        self.referenced: dict[str, list[str]] = defaultdict(list)

    def add(self, rule: str, message: str, where: str, severity: Severity | None = None) -> None:
        key = (rule, message)
        if key not in self.issues:
            self.issues[key] = _Issue(rule, severity, message, [])
        self.issues[key].tensors.append(where)

    def run(self) -> Iterator[Finding]:
        for where, tensor in self.scan.view.tensors():
            if tensor.data_location == EXTERNAL or len(tensor.external_data):
                self.check_tensor(where, tensor)
        if self.referenced and self.base is None:
            self.add("MLS-ONX-203", "the model is inside an archive, so its external data files "
                     f"({shorten(sorted(self.referenced))}) could not be checked or scanned",
                     "(model)", Severity.INFO)
        for issue in self.issues.values():
            count = len(issue.tensors)
            evidence = (f"{issue.message}; {count} tensor{'s' if count != 1 else ''}: "
                        f"{shorten(issue.tensors, 5)}")
            yield self.scan.finding(issue.rule, evidence, issue.tensors[0], issue.severity)

    def check_tensor(self, where: str, tensor: Any) -> None:
        entries: dict[str, str] = {}
        for entry in tensor.external_data:
            key, value = text(entry.key), text(entry.value)
            if isinstance(entry.key, bytes) or isinstance(entry.value, bytes):
                self.add("MLS-ONX-202", "external_data entry that is not valid UTF-8 (loaders decode "
                         "it differently)", where)
            if key in entries:
                self.add("MLS-ONX-202", f"external_data key {key[:60]!r} appears twice (loaders "
                         "disagree on which value wins)", where, Severity.MEDIUM)
            entries[key] = value
        unknown = sorted(set(entries) - self.kb.external_keys)
        if unknown:
            self.add("MLS-ONX-202", f"unknown external_data keys {shorten([k[:60] for k in unknown])} "
                     "(attribute injection in onnx <= 1.20.1, CVE-2026-34445)", where, Severity.MEDIUM)
        honoured = tensor.data_location == EXTERNAL
        if not honoured:
            self.add("MLS-ONX-202", "external_data entries on a tensor whose data_location is not "
                     "EXTERNAL (ignored by onnx, possibly honoured by other loaders)", where, Severity.LOW)
        location = entries.get("location")
        if location is None or location == "":
            if honoured:
                self.add("MLS-ONX-202", "data_location is EXTERNAL but no location is given", where)
            return
        if honoured and tensor.HasField("raw_data"):
            self.add("MLS-ONX-202", "tensor has inline raw_data and an external reference (loaders "
                     "disagree on which bytes are used)", where, Severity.MEDIUM)
        shown = location[:200]
        if len(location) > self.kb.max_location_length:
            self.add("MLS-ONX-202", f"location is {len(location)} characters long", where, Severity.MEDIUM)
        problem = location_problem(location, self.kb.device_names)
        if problem:
            self.add("MLS-ONX-201", f"external data location {shown!r} {problem}", where,
                     None if honoured else Severity.HIGH)
            return
        offset, length = self.numbers(entries, where)
        self.referenced[location].append(where)
        if self.base is not None:
            self.check_file(where, tensor, location, offset, length, entries.get("checksum"))

    def numbers(self, entries: dict[str, str], where: str) -> tuple[int | None, int | None]:
        values: list[int | None] = []
        for key in ("offset", "length"):
            raw = entries.get(key)
            if raw is None:
                values.append(None)
            elif _DIGITS.match(raw):
                values.append(int(raw))
            else:
                self.add("MLS-ONX-202", f"external_data {key} {raw[:40]!r} is not a plain "
                         "non-negative integer (parsers disagree on signs, spaces, hex)", where)
                values.append(None)
        return values[0], values[1]

    def check_file(self, where: str, tensor: Any, location: str, offset: int | None,
                   length: int | None, checksum: str | None) -> None:
        assert self.base is not None
        target = self.base / location.replace("\\", "/")
        escape = self.link_escape(target)
        if escape:
            self.add("MLS-ONX-201", f"external data location {location[:200]!r} {escape}", where)
            return
        try:
            st = target.stat()
        except OSError:
            self.add("MLS-ONX-203", f"external data file {location[:200]!r} does not exist next to "
                     "the model; those weights were not scanned", where)
            return
        if not target.is_file():
            self.add("MLS-ONX-201", f"external data location {location[:200]!r} is not a regular file",
                     where)
            return
        if st.st_nlink > 1:
            self.add("MLS-ONX-201", f"external data file {location[:200]!r} has {st.st_nlink} hard "
                     "links; it may be another file on the system (CVE-2026-34446)", where,
                     Severity.MEDIUM)
        start = offset or 0
        if start > st.st_size:
            self.add("MLS-ONX-202", f"offset {start} is beyond the end of {location[:200]!r} "
                     f"({st.st_size} bytes)", where)
            return
        available = st.st_size - start
        if length is not None and length > available:
            self.add("MLS-ONX-202", f"offset {start} + length {length} runs past the end of "
                     f"{location[:200]!r} ({st.st_size} bytes)", where)
            return
        need = expected_bytes(tensor)
        if need is not None:
            if length is not None and length != need:
                self.add("MLS-ONX-202", f"length {length} does not match the {need} bytes the tensor's "
                         f"shape {list(tensor.dims)} requires", where)
            elif length is None and need > available:
                self.add("MLS-ONX-202", f"the tensor needs {need} bytes but {location[:200]!r} has "
                         f"only {available} after offset {start}", where)
        if checksum:
            self.verify_checksum(where, target, start, length if length is not None else available,
                                 checksum, st.st_size)

    def link_escape(self, target: Path) -> str | None:
        """Why ``target`` leaves the model directory through a link, or None."""
        assert self.base is not None
        try:
            base = self.base.resolve()
            resolved = target.resolve()
        except (OSError, RuntimeError) as exc:
            return f"cannot be resolved ({exc})"
        if resolved.is_relative_to(base):
            return None
        if _hf_cache_blob(base, resolved):
            return None  # Hugging Face cache: snapshots/<rev>/x -> ../../blobs/<sha>
        return f"resolves through a link to {resolved}, outside the model directory (CVE-2026-34447)"

    def verify_checksum(self, where: str, target: Path, start: int, length: int, checksum: str,
                        file_size: int) -> None:
        digest = _digest(target, start, length, self.kb.checksum_algorithm)
        if digest is not None and digest != checksum.strip().lower():
            whole = _digest(target, 0, file_size, self.kb.checksum_algorithm) if (start, length) != (
                0, file_size) else digest
            if whole != checksum.strip().lower():
                self.add("MLS-ONX-204", f"{self.kb.checksum_algorithm} of the referenced bytes is "
                         f"{digest}, the model records {checksum[:80]!r}", where)


def _hf_cache_blob(base: Path, resolved: Path) -> bool:
    parts = base.parts
    return (len(parts) >= 2 and parts[-2] == "snapshots" and resolved.parent.name == "blobs"
            and resolved.parent.parent == base.parent.parent)


def _digest(path: Path, start: int, length: int, algorithm: str) -> str | None:
    try:
        hasher = hashlib.new(algorithm)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError):
        return None
    try:
        pos, end = start, start + length
        while pos < end:
            chunk = os.pread(fd, min(4 << 20, end - pos), pos)
            if not chunk:
                break
            hasher.update(chunk)
            pos += len(chunk)
    finally:
        os.close(fd)
    return hasher.hexdigest()


def check(scan: OnnxScan) -> Iterator[Finding]:
    yield from ExternalDataCheck(scan).run()
