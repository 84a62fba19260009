"""Pickle analysis: policy matching, CPython semantics, limits, streaming and evidence.
Every pickle here is parsed statically; none is ever loaded."""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import zipfile

import pytest

from fixtures.builders.pickle import _Reduce, _stack_call
from scanner.analyzers.interface import Artifact, ScanContext
from scanner.analyzers.pickle.policy import load_policy
from scanner.core.blob import BytesBlob
from scanner.core.finding import Location, Severity
from scanner.core.limits import Limits
from scanner.core.rules import load_catalogue
from scanner.engine import Scanner, ScanOptions, _FileScan
from tests.conftest import SAMPLES, rule_ids, scan_paths


def _scan_bytes(tmp_path, data: bytes, name: str = "x.pkl", **limits):
    path = tmp_path / name
    path.write_bytes(data)
    return Scanner(ScanOptions(limits=Limits(**limits))).scan([path])


@pytest.mark.parametrize(("module", "name", "kind"), [
    ("posix", "system", "dangerous"),
    ("nt", "system", "dangerous"),
    ("os.path", "join", "dangerous"),            # submodule of a listed module
    ("__builtin__", "eval", "dangerous"),         # python 2 alias
    ("pathlib", "os.system", "dangerous"),        # dotted attribute walk
    ("asyncio.unix_events", "_UnixSubprocessTransport._start", "dangerous"),
    ("numpy", "__builtins__", "dunder"),
    ("__torch__", "os.system", "dangerous"),       # allowlisted prefix never hides a dotted walk
    ("collections", "os.system", "dangerous"),
    ("__torch__.torch.nn.modules.linear", "Linear", "allowed"),   # TorchScript class namespace
    ("torch._utils", "_rebuild_tensor_v2", "allowed"),
    ("collections", "OrderedDict", "allowed"),
    ("builtins", "set", "allowed"),
    ("mypackage.models", "Thing", "unreviewed"),
    ("builtins", "print", "unreviewed"),
])
def test_policy_matching(module, name, kind):
    assert load_policy().judge(module, name).kind == kind


def test_real_torch_checkpoint_pickles_are_clean():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Linear(2, 2))
    for obj in (model.state_dict(), model, {"opt": torch.optim.SGD(model.parameters(), 0.1).state_dict()}):
        buf = io.BytesIO()
        torch.save(obj, buf)
        with zipfile.ZipFile(buf) as zf:
            data = next(zf.read(n) for n in zf.namelist() if n.endswith("data.pkl"))
        scan = _FileScan(ScanContext(load_catalogue(), Limits()))
        scan.walk(Artifact(Location("data.pkl"), BytesBlob(data), "data.pkl"))
        result = scan.result
        assert [f.rule_id for f in result.findings] == [], "torch.save output must not be flagged"


def test_evidence_shows_the_decompiled_call_and_offset(tmp_path):
    data = pickle.dumps(_Reduce(os.system, ("echo evidence-marker",)), protocol=4)
    (finding,) = _scan_bytes(tmp_path, data).findings
    assert finding.rule_id == "MLS-PKL-001" and finding.severity is Severity.CRITICAL
    assert "system('echo evidence-marker')" in finding.evidence
    assert finding.location.offset is not None and finding.location.offset > 0


def test_broken_pickle_falls_back_to_opcode_view(tmp_path):
    data = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR\x85\xff garbage"
    result = _scan_bytes(tmp_path, data)
    assert {"MLS-PKL-001", "MLS-PKL-006"} <= rule_ids(result)
    payload = next(f for f in result.findings if f.rule_id == "MLS-PKL-001")
    assert "GLOBAL" in payload.evidence


def test_trailing_data_after_a_complete_pickle(tmp_path):
    result = _scan_bytes(tmp_path, pickle.dumps([1, 2]) + b"\x00\xff\xfe\xfd" * 8)
    assert rule_ids(result) == {"MLS-PKL-009"}


def test_stacked_pickles_are_all_analyzed(tmp_path):
    data = pickle.dumps({"a": 1}) + pickle.dumps([2]) + _stack_call("os", "system", "true")
    result = _scan_bytes(tmp_path, data)
    (finding,) = [f for f in result.findings if f.rule_id == "MLS-PKL-001"]
    assert finding.location.offset >= len(pickle.dumps({"a": 1}) + pickle.dumps([2]))


def test_memo_limit_is_enforced_as_a_finding(tmp_path):
    body = b"".join(b"N\x94" for _ in range(50))  # NONE, MEMOIZE x 50
    result = _scan_bytes(tmp_path, b"\x80\x04" + body + b"N.", pickle_memo_entries=10)
    assert "MLS-GEN-012" in rule_ids(result)


def test_stack_limit_is_enforced_as_a_finding(tmp_path):
    result = _scan_bytes(tmp_path, b"\x80\x04" + b"N" * 100 + b".", pickle_stack_depth=20)
    assert "MLS-GEN-012" in rule_ids(result)


def test_unsupported_protocol_is_malformed(tmp_path):
    assert "MLS-PKL-006" in rule_ids(_scan_bytes(tmp_path, b"\x80\x07N."))


def test_nested_pickle_is_reported_inside_the_outer_one(tmp_path):
    result = scan_paths(SAMPLES / "malicious/pickle/nested_loads.pkl")
    nested = [f for f in result.findings if f.location.members]
    assert nested and nested[0].location.members[0].startswith("<loads@")
    assert "system" in nested[0].evidence


def test_large_byte_strings_are_skipped_not_held(tmp_path):
    """A 64 MiB BINBYTES8 is skipped by seeking: analysis stays fast and finds what follows."""
    size = 64 << 20
    path = tmp_path / "big.pkl"
    with open(path, "wb") as handle:
        handle.write(b"\x80\x04\x8e" + struct.pack("<Q", size))
        handle.truncate(handle.tell() + size)
        handle.seek(0, 2)
        handle.write(b"0" + _stack_call("os", "system", "true")[2:])
    started = time.perf_counter()
    result = Scanner().scan([path])
    assert "MLS-PKL-001" in rule_ids(result)
    assert time.perf_counter() - started < 10


def test_truncated_length_argument_is_malformed(tmp_path):
    data = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc"
    assert "MLS-PKL-006" in rule_ids(_scan_bytes(tmp_path, data))


def test_protocol0_floats_do_not_break_analysis(tmp_path):
    data = pickle.dumps({"lr": 0.001, "x": [1.5, -2.25]}, protocol=0)
    assert _scan_bytes(tmp_path, data).findings == []


def test_cli_end_to_end_reports_and_fails(run_cli):
    result = run_cli("scan", str(SAMPLES / "malicious/pickle/os_system_p4.pkl"))
    assert result.exit_code == 1
    assert "MLS-PKL-001" in result.output and "would run (decompiled with fickling)" in result.output
    clean = run_cli("scan", str(SAMPLES / "benign/pickle"))
    assert clean.exit_code == 0, clean.output
