"""A lenient, bounded zip reader that sees what model loaders see.

PyTorch's miniz-based reader follows the central directory and ignores what Python's
``zipfile`` checks (local-vs-central name mismatch, CRC, flag bits), so an archive ``zipfile``
rejects can still be loaded (CVE-2025-1944, CVE-2025-10156). This reader follows the central
directory too, never trusts a size or offset without checking it against the file, and returns
every irregularity as an :class:`Anomaly` instead of raising, so each member can still be scanned.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from scanner.core.blob import Blob

EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"
CENTRAL_SIG = b"PK\x01\x02"
LOCAL_SIG = b"PK\x03\x04"
MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class Anomaly:
    rule_id: str
    message: str
    member: str | None = None


@dataclass(frozen=True)
class Member:
    name: str                  # central-directory name (what PyTorch uses)
    local_name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int           # first byte of the member's data
    external_attr: int

    @property
    def is_symlink(self) -> bool:
        return (self.external_attr >> 16) & 0o170000 == 0o120000

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(frozen=True)
class Directory:
    members: tuple[Member, ...]
    anomalies: tuple[Anomaly, ...]


class ZipStructureError(ValueError):
    """No usable central directory: the archive cannot be listed."""


def _decode(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")


def _find_eocd(blob: Blob) -> int:
    tail_len = min(blob.size, 22 + MAX_COMMENT)
    tail = blob.read_at(blob.size - tail_len, tail_len)
    pos = tail.rfind(EOCD_SIG)
    while pos >= 0:
        if len(tail) - pos >= 22:
            return blob.size - tail_len + pos
        pos = tail.rfind(EOCD_SIG, 0, pos)
    raise ZipStructureError("no end-of-central-directory record")


def read_directory(blob: Blob, max_members: int) -> Directory:
    anomalies: list[Anomaly] = []
    eocd = _find_eocd(blob)
    (_sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, comment_len) = struct.unpack(
        "<4sHHHHIIH", blob.read_at(eocd, 22))
    end_of_archive = eocd + 22 + comment_len
    if count == 0xFFFF or cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
        locator = blob.read_at(eocd - 20, 20)
        if len(locator) == 20 and locator[:4] == ZIP64_LOCATOR_SIG:
            (z64_offset,) = struct.unpack_from("<Q", locator, 8)
            record = blob.read_at(z64_offset, 56)
            if len(record) == 56 and record[:4] == ZIP64_EOCD_SIG:
                count, _, cd_size, cd_offset = struct.unpack_from("<QQQQ", record, 24)
    # Data prepended to the archive shifts every offset; readers correct by where the central
    # directory really ends (the EOCD), and so do we.
    shift = 0
    if blob.read_at(cd_offset, 4) != CENTRAL_SIG and eocd - cd_size >= 0 \
            and blob.read_at(eocd - cd_size, 4) == CENTRAL_SIG:
        shift = eocd - cd_size - cd_offset
        cd_offset += shift
        anomalies.append(Anomaly("MLS-ARC-009", f"{shift} byte(s) of other data precede the archive "
                                 "(a polyglot: the file is also something else)"))
    if count > max_members:
        raise ZipStructureError(f"central directory lists {count} members, over the limit of {max_members}")
    if cd_offset + cd_size > blob.size:
        raise ZipStructureError(f"central directory at {cd_offset}+{cd_size} lies outside the {blob.size}-byte file")
    if end_of_archive < blob.size:
        anomalies.append(Anomaly("MLS-ARC-009", f"{blob.size - end_of_archive} byte(s) after the end of the archive"))
    members: list[Member] = []
    pos = cd_offset
    cd_end = cd_offset + cd_size
    for _ in range(count):
        head = blob.read_at(pos, 46)
        if len(head) < 46 or head[:4] != CENTRAL_SIG or pos + 46 > cd_end:
            anomalies.append(Anomaly("MLS-ARC-010", f"central directory entry at byte {pos} is corrupt; "
                                     "later members cannot be listed"))
            break
        (_v1, _v2, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen, _disk, _ia, eattr,
         offset) = struct.unpack_from("<HHHHHHIIIHHHHHII", head, 4)
        raw_name = blob.read_at(pos + 46, nlen)
        extra = blob.read_at(pos + 46 + nlen, elen)
        usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
        offset += shift
        pos += 46 + nlen + elen + clen
        name = _decode(raw_name, flags)
        member = _with_local_header(blob, name, flags, method, crc, csize, usize, offset, eattr, anomalies)
        if member is not None:
            members.append(member)
    _check_overlaps(members, anomalies)
    first = min((m.header_offset for m in members), default=0)
    if first > 0 and not shift:
        anomalies.append(Anomaly("MLS-ARC-009", f"{first} byte(s) of other data before the first member "
                                 "(a polyglot: the file is also something else)"))
    return Directory(tuple(members), tuple(anomalies))


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4: pos + 4 + length]
        if tag == 0x0001:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        pos += 4 + length
    return usize, csize, offset


def _with_local_header(blob: Blob, name: str, flags: int, method: int, crc: int, csize: int,
                       usize: int, offset: int, eattr: int, anomalies: list[Anomaly]) -> Member | None:
    local = blob.read_at(offset, 30)
    if len(local) < 30 or local[:4] != LOCAL_SIG:
        anomalies.append(Anomaly("MLS-ARC-010", f"local header of '{name}' at byte {offset} is missing "
                                 "or corrupt; the member cannot be read", name))
        return None
    nlen, elen = struct.unpack_from("<HH", local, 26)
    local_flags = struct.unpack_from("<H", local, 6)[0]
    local_name = _decode(blob.read_at(offset + 30, nlen), local_flags)
    data_offset = offset + 30 + nlen + elen
    if local_name != name:
        anomalies.append(Anomaly("MLS-ARC-004", f"central directory says '{name}' but the local header "
                                 f"says '{local_name}' (CVE-2025-1944)", name))
    if data_offset + csize > blob.size:
        anomalies.append(Anomaly("MLS-ARC-010", f"data of '{name}' ({csize} bytes at {data_offset}) runs "
                                 "past the end of the file", name))
        return None
    return Member(name, local_name, method, flags | local_flags, crc, csize, usize, offset,
                  data_offset, eattr)


def _check_overlaps(members: list[Member], anomalies: list[Anomaly]) -> None:
    ordered = sorted(members, key=lambda m: m.header_offset)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.header_offset < prev.data_offset + prev.compressed_size:
            anomalies.append(Anomaly("MLS-ARC-007", f"'{cur.name}' overlaps '{prev.name}': members share "
                                     "bytes (a non-recursive zip bomb or a parser confusion)", cur.name))
