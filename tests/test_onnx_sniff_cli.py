"""ONNX sniffing (content, not names; field order; truncation; unknown fields) without breaking
TensorFlow protobuf detection, and the analyzer end to end through the real CLI."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx")

from fixtures.builders import onnx as samples  # noqa: E402
from scanner.core.blob import BytesBlob  # noqa: E402
from scanner.formats.interface import Format  # noqa: E402
from scanner.formats.sniff import sniff  # noqa: E402
from tests.conftest import SAMPLES  # noqa: E402


def pb_field(number: int, payload: bytes) -> bytes:
    return samples.pb_field(number, payload)


def _varint_field(number: int, value: int) -> bytes:
    return samples.varint(number << 3) + samples.varint(value)


def _onnx_bytes() -> bytes:
    return samples.build_model("classifier.onnx").SerializeToString()


def test_onnx_models_sniff_as_onnx_whatever_their_name():
    assert sniff(BytesBlob(_onnx_bytes())).format is Format.ONNX


def test_fields_in_any_order_are_still_onnx():
    model = samples.build_model("classifier.onnx")
    graph = model.graph.SerializeToString()
    opset = model.opset_import[0].SerializeToString()
    reordered = pb_field(7, graph) + pb_field(8, opset) + _varint_field(1, 8) + pb_field(2, b"pytorch")
    assert sniff(BytesBlob(reordered)).format is Format.ONNX


def test_truncated_onnx_is_still_onnx():
    assert sniff(BytesBlob(_onnx_bytes()[:200])).format is Format.ONNX


def test_unknown_top_level_fields_do_not_hide_a_model():
    data = _onnx_bytes() + pb_field(99, b"future")
    assert sniff(BytesBlob(data)).format is Format.ONNX


def test_configuration_field_26_is_onnx():
    assert sniff(BytesBlob(_onnx_bytes() + pb_field(26, pb_field(1, b"cfg")))).format is Format.ONNX


def test_tensorflow_protobufs_keep_their_formats():
    saved_model = _varint_field(1, 1) + pb_field(2, pb_field(1, pb_field(1, b"serve")))
    assert sniff(BytesBlob(saved_model)).format is Format.TF_SAVEDMODEL
    node = pb_field(1, b"x") + pb_field(2, b"Placeholder")
    graph_def = pb_field(1, node) + pb_field(1, node) + pb_field(4, _varint_field(1, 1087))
    assert sniff(BytesBlob(graph_def)).format is Format.TF_GRAPHDEF


@pytest.mark.parametrize("data", [b"\x08\x01garbage that is not protobuf", b"\x3a\xff\xff\xff\xff\x0f", b"\x08"])
def test_garbage_with_a_protobuf_looking_first_byte_is_not_onnx(data):
    assert sniff(BytesBlob(data)).format is not Format.ONNX


def test_cli_reports_a_backdoor_and_exits_1(scan_json):
    code, report = scan_json(SAMPLES / "malicious" / "onnx" / "backdoor_where.onnx")
    assert code == 1
    rules = {f["rule_id"] for f in report["findings"]}
    assert "MLS-ONX-101" in rules
    finding = next(f for f in report["findings"] if f["rule_id"] == "MLS-ONX-101")
    assert finding["severity"] == "critical" and "Where" in finding["evidence"]


def test_cli_passes_a_benign_directory(scan_json):
    code, report = scan_json(SAMPLES / "benign" / "onnx")
    assert code == 0, [f for f in report["findings"] if f["severity"] in ("high", "critical")]


def test_cli_explains_onnx_rules(run_cli):
    result = run_cli("rules", "MLS-ONX-101")
    assert result.exit_code == 0
    assert "ShadowLogic" in result.output and "Limits" in result.output
    listing = json.loads(run_cli("rules", "--format", "json").output)
    ids = {r["id"] for r in listing}
    assert {"MLS-ONX-001", "MLS-ONX-201", "MLS-ONX-210", "MLS-ONX-220", "MLS-ONX-240"} <= ids
