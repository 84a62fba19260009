"""External data (MLS-ONX-201..204): every spelling of "outside the model directory", in every
place a tensor can live, plus the file-system checks for a model scanned in place."""

from __future__ import annotations

import hashlib
import os

import pytest

pytest.importorskip("onnx")

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fixtures.builders import onnx as samples  # noqa: E402
from scanner.analyzers.onnx.external import location_problem  # noqa: E402
from scanner.analyzers.onnx.knowledge import knowledge  # noqa: E402
from scanner.core.finding import Severity  # noqa: E402
from tests.conftest import scan_paths  # noqa: E402

DEVICES = knowledge().device_names


@pytest.mark.parametrize("location", [
    "../../../../etc/passwd", "weights/../../x.bin", "a/b/../../../x", "..\\..\\windows\\win.ini",
    "/etc/passwd", "\\\\server\\share\\w.bin", "//server/share/w.bin", "C:\\Windows\\win.ini", "c:w.bin",
    "http://169.254.169.254/latest", "file:///etc/passwd", "w.bin\x00.txt", "NUL", "con.bin", "data/COM1.txt",
    "w.bin:hidden_stream", "~root/.ssh/id_rsa",
])
def test_location_strings_that_escape(location):
    assert location_problem(location, DEVICES) is not None


@pytest.mark.parametrize("location", [
    "model.onnx.data", "weights/layer_0.bin", "a..b.bin", "model.onnx_data", "console.bin", "w.bin.1",
])
def test_ordinary_locations(location):
    assert location_problem(location, DEVICES) is None


def _model_with_external(location: str, data: bytes | None, tmp_path, **keys: str):
    """The benign classifier with fc.weight (10x4 float32 = 160 bytes) stored externally."""
    model = samples.build_model("classifier.onnx")
    weight = next(t for t in model.graph.initializer if t.name == "fc.weight")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "160", **keys}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    if data is not None:
        (tmp_path / location).write_bytes(data)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _rules(path):
    return {(f.rule_id, f.severity) for f in scan_paths(path).findings}


WEIGHTS = np.arange(40, dtype=np.float32).tobytes()


def test_well_formed_external_data_is_clean(tmp_path):
    assert _rules(_model_with_external("w.bin", WEIGHTS, tmp_path)) == set()


def test_offset_and_length_beyond_the_file(tmp_path):
    path = _model_with_external("w.bin", WEIGHTS[:100], tmp_path)
    assert ("MLS-ONX-202", Severity.HIGH) in _rules(path)
    path = _model_with_external("w.bin", WEIGHTS, tmp_path, offset="4096")
    findings = scan_paths(path).findings
    assert any(f.rule_id == "MLS-ONX-202" and "beyond the end" in f.evidence for f in findings)


def test_length_that_does_not_match_the_shape(tmp_path):
    """The "offset opacity" trick: a region of the wrong size is read as the tensor."""
    path = _model_with_external("w.bin", WEIGHTS * 2, tmp_path, length="320")
    findings = scan_paths(path).findings
    assert any(f.rule_id == "MLS-ONX-202" and "does not match the 160 bytes" in f.evidence for f in findings)


@pytest.mark.parametrize("offset", ["-1", "0x10", " 8", "1e3"])
def test_offsets_that_parsers_read_differently(tmp_path, offset):
    assert ("MLS-ONX-202", Severity.HIGH) in _rules(_model_with_external("w.bin", WEIGHTS, tmp_path, offset=offset))


def test_unknown_and_duplicate_keys(tmp_path):
    path = _model_with_external("w.bin", WEIGHTS, tmp_path, __class__="x", basepath="")
    findings = scan_paths(path).findings
    assert any(f.rule_id == "MLS-ONX-202" and "__class__" in f.evidence and f.severity is Severity.MEDIUM
               for f in findings)


def test_missing_external_file_is_unverified_weights(tmp_path):
    findings = scan_paths(_model_with_external("absent.bin", None, tmp_path)).findings
    assert [(f.rule_id, f.severity) for f in findings] == [("MLS-ONX-203", Severity.MEDIUM)]


def test_symlink_leaving_the_model_directory(tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(WEIGHTS)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(secret, model_dir / "w.bin")
    path = _model_with_external("w.bin", None, model_dir)
    findings = scan_paths(path).findings
    assert any(f.rule_id == "MLS-ONX-201" and f.severity is Severity.CRITICAL and "link" in f.evidence
               for f in findings)


def test_hugging_face_cache_layout_is_not_an_escape(tmp_path):
    repo = tmp_path / "models--org--name"
    blob = repo / "blobs" / ("ab" * 32)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(WEIGHTS)
    snapshot = repo / "snapshots" / ("cd" * 20)
    snapshot.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snapshot), snapshot / "w.bin")
    assert _rules(_model_with_external("w.bin", None, snapshot)) == set()


def test_hard_linked_external_file(tmp_path):
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(WEIGHTS)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.link(elsewhere, model_dir / "w.bin")
    assert ("MLS-ONX-201", Severity.MEDIUM) in _rules(_model_with_external("w.bin", None, model_dir))


def test_checksum_is_verified(tmp_path):
    good = hashlib.sha1(WEIGHTS).hexdigest()
    assert _rules(_model_with_external("w.bin", WEIGHTS, tmp_path, checksum=good)) == set()
    tampered = WEIGHTS[:-4] + b"\x00\x00\x80\x7f"
    assert ("MLS-ONX-204", Severity.HIGH) in _rules(_model_with_external("w.bin", tampered, tmp_path, checksum=good))


def test_external_flag_without_location(tmp_path):
    model = samples.build_model("classifier.onnx")
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    assert ("MLS-ONX-202", Severity.HIGH) in _rules(path)


def test_location_on_a_tensor_not_marked_external_is_still_reported(tmp_path):
    """onnx ignores external_data when data_location is DEFAULT; other loaders might not."""
    model = samples.build_model("classifier.onnx")
    entry = model.graph.initializer[0].external_data.add()
    entry.key, entry.value = "location", "/etc/shadow"
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    assert ("MLS-ONX-201", Severity.HIGH) in _rules(path)


def test_training_graph_tensors_are_checked(tmp_path):
    model = samples.build_model("classifier.onnx")
    tensor = numpy_helper.from_array(np.zeros(4, np.float32), "step_w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../optimizer_state.bin"
    info = model.training_info.add()
    info.algorithm.CopyFrom(helper.make_graph([], "algorithm", [], [], [tensor]))
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    findings = scan_paths(path).findings
    assert any(f.rule_id == "MLS-ONX-201" and "training_info[0].algorithm" in f.evidence for f in findings)


def test_repeated_problems_are_reported_once_with_a_count(tmp_path):
    model = samples.build_model("classifier.onnx")
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "/dev/zero"
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    found = [f for f in scan_paths(path).findings if f.rule_id == "MLS-ONX-201"]
    assert len(found) == 1 and "4 tensors" in found[0].evidence
