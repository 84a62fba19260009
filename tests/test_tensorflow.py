"""TensorFlow graphs: ops in graphs and in the function library, conditional ops, checkpoint
plumbing left alone, and corrupt protobufs failing closed."""

from __future__ import annotations

from fixtures.builders.tensorflow import BENIGN_NODES, graph, ld, node, saved_model
from tests.conftest import rule_ids, scan_paths


def _scan(tmp_path, data: bytes):
    path = tmp_path / "saved_model.pb"
    path.write_bytes(data)
    return scan_paths(path)


def test_checkpoint_plumbing_is_not_flagged(tmp_path):
    assert _scan(tmp_path, saved_model(graph(BENIGN_NODES))).findings == []


def test_op_hidden_in_a_function_is_found_with_its_function_name(tmp_path):
    data = saved_model(graph(BENIGN_NODES, {"__inference_f_1": [node("x", "PyFunc")]}))
    (finding,) = _scan(tmp_path, data).findings
    assert finding.rule_id == "MLS-TFS-001" and "__inference_f_1" in finding.location.node


def test_printv2_only_flags_file_streams(tmp_path):
    to_file = saved_model(graph([node("p", "PrintV2", attrs={"output_stream": b"file:///tmp/x"})]))
    to_stderr = saved_model(graph([node("p", "PrintV2", attrs={"output_stream": b"stderr"})]))
    assert "MLS-TFS-002" in rule_ids(_scan(tmp_path, to_file))
    assert _scan(tmp_path, to_stderr).findings == []


def test_debug_urls_are_flagged(tmp_path):
    data = saved_model(graph([node("d", "DebugIdentity", attrs={"debug_urls": b"grpc://10.0.0.1:6064"})]))
    assert "MLS-TFS-002" in rule_ids(_scan(tmp_path, data))


def test_corrupt_nested_message_fails_closed(tmp_path):
    bad_graph = ld(1, b"\x0a\xff\xff\xff\x0f")  # a NodeDef whose name length runs past its end
    data = saved_model(bad_graph)
    result = _scan(tmp_path, data)
    assert result.errors == []
    assert "MLS-TFS-005" in rule_ids(result)
