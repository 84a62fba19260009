"""Zip and tar containers: every member a loader could read is yielded for scanning, and every
structural irregularity is a finding of its own (the member is still scanned)."""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator

from scanner.analyzers.decompress import decompress
from scanner.analyzers.interface import Analyzer, Artifact, LimitExceeded, ScanContext
from scanner.analyzers.torch import structure_findings
from scanner.core.blob import Blob
from scanner.core.finding import Finding
from scanner.formats.interface import Format
from scanner.formats.ziplenient import Member, ZipStructureError, read_directory

CRC_CHECK_STORED_MAX = 16 << 20   # stored members above this are tensor data: CRC not recomputed
_DRIVE = re.compile(r"^[A-Za-z]:")
_METHODS = {8: "deflate", 12: "bzip2"}


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name would escape an extraction directory, or None."""
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "is an absolute path"
    if "\\" in name:
        return "contains a backslash (a separator on Windows)"
    if ".." in re.split(r"[/\\]", name):
        return "contains a '..' segment"
    return None


def _name_findings(ctx: ScanContext, artifact: Artifact, names: list[str]) -> Iterator[Finding]:
    seen: set[str] = set()
    for name in names:
        reason = unsafe_name_reason(name)
        if reason:
            yield ctx.finding("MLS-ARC-001", artifact.location.child(name),
                              f"member name {name!r} {reason}; extracting the archive writes outside "
                              "the target directory (zip slip)")
        if name in seen:
            yield ctx.finding("MLS-ARC-003", artifact.location.child(name),
                              f"member {name!r} appears more than once; different readers pick "
                              "different copies, so the scanned one may not be the loaded one")
        seen.add(name)


class ZipAnalyzer(Analyzer):
    name = "zip"
    formats = frozenset({Format.ZIP})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        try:
            directory = read_directory(artifact.blob, ctx.limits.archive_members)
        except ZipStructureError as exc:
            yield ctx.finding("MLS-ARC-010", artifact.location,
                              f"the zip cannot be listed: {exc}. Its members were not scanned; "
                              "do not load it.")
            return
        for anomaly in directory.anomalies:
            loc = artifact.location.child(anomaly.member) if anomaly.member else artifact.location
            yield ctx.finding(anomaly.rule_id, loc, anomaly.message)
        yield from _name_findings(ctx, artifact, [m.name for m in directory.members])
        yield from structure_findings(artifact, ctx, (m.name for m in directory.members), "zip")
        copies: dict[str, int] = {}
        for member in directory.members:
            if member.is_dir and member.compressed_size == 0:
                continue
            copies[member.name] = copies.get(member.name, 0) + 1
            # a repeated name gets its own location, so each copy is reported separately
            label = member.name if copies[member.name] == 1 else f"{member.name} (copy {copies[member.name]})"
            yield from self._member(artifact, ctx, member, label)

    def _member(self, artifact: Artifact, ctx: ScanContext, member: Member,
                label: str) -> Iterator[Finding | Artifact]:
        loc = artifact.location.child(label)
        if member.is_symlink:
            yield ctx.finding("MLS-ARC-002", loc, f"member {member.name!r} is a symbolic link; "
                              "extracting it can point later writes or reads outside the directory")
        if member.flags & 0x41 or member.flags & 0x20:
            bits = ", ".join(b for bit, b in ((0x1, "0x1 encrypted"), (0x20, "0x20 patched data"),
                                              (0x40, "0x40 strong encryption")) if member.flags & bit)
            yield ctx.finding("MLS-ARC-006", loc,
                              f"flag bits {bits} are set; strict readers refuse the member and lenient "
                              "ones read it anyway (CVE-2025-1945). It is scanned as if unencrypted.")
        if member.method == 0:
            blob: Blob = artifact.blob.slice(member.data_offset, member.compressed_size)
            if member.compressed_size <= CRC_CHECK_STORED_MAX:
                yield from self._check_crc(ctx, loc, member, _crc_of(blob))
        elif member.method in _METHODS:
            declared = member.size / max(1, member.compressed_size)
            if member.size > 1 << 20 and declared > ctx.limits.compression_ratio:
                yield ctx.finding("MLS-ARC-008", loc,
                                  f"declares {member.size} bytes from {member.compressed_size} "
                                  f"(ratio {declared:.0f}:1, limit {ctx.limits.compression_ratio:g}:1); "
                                  "not decompressed")
                return
            out = decompress(artifact.blob, member.data_offset, member.compressed_size,
                             _METHODS[member.method], ctx.limits)
            if out.problem:
                yield ctx.finding(out.problem[0], loc, out.problem[1])
            else:
                yield from self._check_crc(ctx, loc, member, out.crc32)
            blob = out.blob
        else:
            yield ctx.finding("MLS-ARC-011", loc,
                              f"compression method {member.method} is not supported by mlscan; the "
                              "member was not scanned")
            return
        yield Artifact(loc, blob, member.name, artifact.depth + 1)

    @staticmethod
    def _check_crc(ctx: ScanContext, loc, member: Member, actual: int) -> Iterator[Finding]:  # type: ignore[no-untyped-def]
        if actual != member.crc:
            yield ctx.finding("MLS-ARC-005", loc,
                              f"CRC-32 is {actual:08x} but the directory says {member.crc:08x}: the "
                              "member was modified after the archive was written. PyTorch loads it "
                              "anyway; Python's zipfile refuses it (CVE-2025-10156).")


def _crc_of(blob: Blob) -> int:
    import zlib

    crc = 0
    pos = 0
    while pos < blob.size:
        chunk = blob.read_at(pos, 1 << 20)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        pos += len(chunk)
    return crc


class TarAnalyzer(Analyzer):
    name = "tar"
    formats = frozenset({Format.TAR})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        handle = artifact.blob.open()
        members: list[tarfile.TarInfo] = []
        try:
            with tarfile.open(fileobj=handle, mode="r:") as archive:
                for info in archive:
                    members.append(info)
                    if len(members) > ctx.limits.archive_members:
                        raise LimitExceeded("MLS-GEN-012", f"more than {ctx.limits.archive_members} "
                                            "tar members; the rest were not scanned", artifact.location)
        except tarfile.TarError as exc:
            yield ctx.finding("MLS-ARC-010", artifact.location,
                              f"tar structure is corrupt after {len(members)} member(s): {exc}")
        yield from _name_findings(ctx, artifact, [m.name for m in members])
        yield from structure_findings(artifact, ctx, (m.name for m in members), "tar")
        for info in members:
            loc = artifact.location.child(info.name)
            if info.issym() or info.islnk():
                yield ctx.finding("MLS-ARC-002", loc, f"{'symbolic' if info.issym() else 'hard'} link "
                                  f"{info.name!r} -> {info.linkname!r}; extraction can reach outside "
                                  "the directory (CVE-2024-5187 class)")
            elif info.isdev() or info.isfifo():
                yield ctx.finding("MLS-ARC-002", loc, f"device or FIFO member {info.name!r}")
            elif info.isfile():
                data_offset = info.offset_data
                if data_offset + info.size > artifact.blob.size:
                    yield ctx.finding("MLS-ARC-010", loc, "member data runs past the end of the archive")
                    continue
                yield Artifact(loc, artifact.blob.slice(data_offset, info.size), info.name, artifact.depth + 1)
