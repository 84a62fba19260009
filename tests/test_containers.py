"""Containers: the lenient zip reader, tar, compression wrappers and .npy, with their limits."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile

import pytest

from fixtures.builders.containers import benign_pickle, payload, torch_like, zip_bytes
from scanner.core.blob import BytesBlob
from scanner.core.limits import Limits
from scanner.engine import Scanner, ScanOptions
from scanner.formats.ziplenient import read_directory
from tests.conftest import rule_ids


def _scan(tmp_path, data: bytes, name: str = "x.zip", **limits):
    path = tmp_path / name
    path.write_bytes(data)
    return Scanner(ScanOptions(limits=Limits(**limits))).scan([path])


def test_zip_members_are_scanned_by_content_with_member_locations(tmp_path):
    result = _scan(tmp_path, torch_like(payload("loc")), "model.pt")
    (finding,) = [f for f in result.findings if f.rule_id == "MLS-PKL-001"]
    assert finding.location.path.endswith("model.pt")
    assert finding.location.members == ("archive/data.pkl",)
    assert str(finding.location).split("@")[0].endswith("model.pt!archive/data.pkl")


def test_reader_follows_the_central_directory_like_pytorch():
    data = torch_like(payload("cd")).replace(b"archive/data.pkl", b"archive/datap.kl", 1)
    with pytest.raises(zipfile.BadZipFile):  # what Python's zipfile does
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    directory = read_directory(BytesBlob(data), 100)
    assert "archive/data.pkl" in [m.name for m in directory.members]
    assert [a.rule_id for a in directory.anomalies] == ["MLS-ARC-004"]


def test_ratio_is_enforced_on_actual_bytes_even_when_sizes_lie(tmp_path):
    data = bytearray(zip_bytes([("z.bin", b"\x00" * (4 << 20))], zipfile.ZIP_DEFLATED))
    for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        data[pos + size_at: pos + size_at + 4] = struct.pack("<I", 100)  # claim 100 bytes
    result = _scan(tmp_path, bytes(data), compression_ratio=50)
    assert "MLS-ARC-008" in rule_ids(result)


def test_member_count_limit(tmp_path):
    data = zip_bytes([(f"m{i}.txt", b"x") for i in range(30)])
    result = _scan(tmp_path, data, archive_members=10)
    assert "MLS-ARC-010" in rule_ids(result)


def test_depth_limit_stops_nested_archives(tmp_path):
    data = benign_pickle()
    for level in range(5):
        data = zip_bytes([(f"level{level}.zip", data)])
    result = _scan(tmp_path, data, archive_depth=2)
    assert "MLS-GEN-004" in rule_ids(result)


def test_truncated_gzip_keeps_what_decompressed(tmp_path):
    data = gzip.compress(payload("truncated_gzip") + b"\x00" * 100_000)
    result = _scan(tmp_path, data[: len(data) - 40], "model.pkl.gz")
    assert {"MLS-ARC-010", "MLS-PKL-001"} <= rule_ids(result)


def test_polyglot_prefix_is_reported(tmp_path):
    result = _scan(tmp_path, b"GIF89a" + b"\x00" * 100 + zip_bytes([("a.txt", b"hi")]), "image.zip")
    assert "MLS-ARC-009" in rule_ids(result)


def test_unlistable_zip_fails_closed(tmp_path):
    result = _scan(tmp_path, b"PK\x03\x04" + b"\x00" * 200)
    assert "MLS-ARC-010" in rule_ids(result)


def test_npy_size_mismatch_reveals_trailing_data(tmp_path):
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.ones(4, dtype=np.float32))
    result = _scan(tmp_path, buf.getvalue() + b"hidden", "a.npy")
    assert "MLS-NPY-002" in rule_ids(result)


def test_stored_tensor_members_are_not_read_whole(tmp_path):
    """A large stored member is only sniffed (4 KiB) and CRC-skipped above the threshold."""
    big = 40 << 20
    path = tmp_path / "ckpt.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", benign_pickle())
        with zf.open("archive/data/0", "w", force_zip64=True) as member:
            chunk = b"\x01" * (1 << 20)
            for _ in range(big >> 20):
                member.write(chunk)
    from scanner.core import blob as blob_module

    reads: list[int] = []
    original = blob_module.SliceBlob.read_at

    def counting(self, offset, length):  # type: ignore[no-untyped-def]
        data = original(self, offset, length)
        reads.append(len(data))
        return data

    blob_module.SliceBlob.read_at = counting  # type: ignore[method-assign]
    try:
        result = Scanner().scan([path])
    finally:
        blob_module.SliceBlob.read_at = original  # type: ignore[method-assign]
    assert not [f for f in result.findings if f.severity >= 3]
    assert sum(reads) < 1 << 20, "tensor data must not be read by analysis"


def test_torchscript_custom_ops_are_medium(tmp_path):
    from fixtures.builders.torch import torchscript_with_source

    source = "class M(Module):\n  def forward(self, x):\n    return ops.evil_ns.run(ops.aten.relu(x))\n"
    result = _scan(tmp_path, torchscript_with_source(source), "m.zip")
    (finding,) = [f for f in result.findings if f.rule_id == "MLS-TCH-012"]
    assert finding.severity == 2 and "evil_ns" in finding.evidence and finding.location.node == "line 3"
