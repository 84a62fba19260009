"""Operators that bring code or I/O into a model (MLS-ONX-210..215)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

from scanner.core.finding import Severity  # noqa: E402
from tests.conftest import scan_paths  # noqa: E402


def _model(nodes, opsets=(), functions=(), inputs=None, outputs=None):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]
    graph = helper.make_graph(nodes, "main_graph", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)] + [
        helper.make_opsetid(d, 1) for d in opsets], functions=list(functions))
    model.ir_version = 8
    return model


def _scan(model, tmp_path, name="model.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return scan_paths(path).findings


def _pairs(findings):
    return {(f.rule_id, f.severity) for f in findings}


def test_unknown_custom_domain_is_high_and_lists_domain_and_ops(tmp_path):
    model = _model([helper.make_node("Decode", ["x"], ["t"], domain="com.acme.ops"),
                    helper.make_node("Fix", ["t"], ["y"], domain="com.acme.ops")], ["com.acme.ops"])
    (finding,) = [f for f in _scan(model, tmp_path) if f.rule_id == "MLS-ONX-210"]
    assert finding.severity is Severity.HIGH
    assert "com.acme.ops" in finding.evidence and "Decode" in finding.evidence and "Fix" in finding.evidence


def test_published_library_domain_is_medium(tmp_path):
    model = _model([helper.make_node("StringRegexReplace", ["x"], ["y"], domain="ai.onnx.contrib")],
                   ["ai.onnx.contrib"])
    assert ("MLS-ONX-210", Severity.MEDIUM) in _pairs(_scan(model, tmp_path))


def test_onnxruntime_contrib_ops_are_info_only(tmp_path):
    model = _model([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], ["com.microsoft"])
    assert _pairs(_scan(model, tmp_path)) == {("MLS-ONX-213", Severity.INFO)}


def test_standard_domain_spelled_ai_onnx_is_standard(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"], domain="ai.onnx")])
    model.opset_import[0].domain = "ai.onnx"
    assert _pairs(_scan(model, tmp_path)) == set()


def test_calls_to_local_functions_are_not_custom_ops(tmp_path):
    body = [helper.make_node("Relu", ["a"], ["b"])]
    function = helper.make_function("my.funcs", "Act", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    model = _model([helper.make_node("Act", ["x"], ["y"], domain="my.funcs")], ["my.funcs"], [function])
    assert _pairs(_scan(model, tmp_path)) == set()


@pytest.mark.parametrize(("uri", "severity"), [
    ("https://example.invalid/openai/deployments/gpt", Severity.HIGH),
    ("http://169.254.169.254/latest/meta-data/", Severity.CRITICAL),
    ("http://localhost:8080/v1", Severity.CRITICAL),
    ("http://10.0.0.5/score", Severity.CRITICAL),
])
def test_network_invoker_ops(tmp_path, uri, severity):
    node = helper.make_node("OpenAIAudioToText", ["token", "audio"], ["text"], domain="com.microsoft.extensions",
                            model_uri=uri.encode(), model_name=b"whisper-1")
    model = _model([node], ["com.microsoft.extensions"],
                   inputs=[helper.make_tensor_value_info("token", TensorProto.STRING, [1]),
                           helper.make_tensor_value_info("audio", TensorProto.UINT8, ["n"])],
                   outputs=[helper.make_tensor_value_info("text", TensorProto.STRING, [1])])
    (finding,) = [f for f in _scan(model, tmp_path) if f.rule_id == "MLS-ONX-211"]
    assert finding.severity is severity and uri in finding.evidence


def test_custom_op_configured_with_a_url(tmp_path):
    node = helper.make_node("Fetch", ["x"], ["y"], domain="com.acme.io", endpoint=b"https://collector.invalid/x")
    assert ("MLS-ONX-211", Severity.HIGH) in _pairs(_scan(_model([node], ["com.acme.io"]), tmp_path))


def test_image_reader_is_file_access(tmp_path):
    node = helper.make_node("ImageReader", ["path"], ["y"], domain="ai.onnx.contrib")
    model = _model([node], ["ai.onnx.contrib"], inputs=[helper.make_tensor_value_info("path", TensorProto.STRING, [1])])
    assert ("MLS-ONX-211", Severity.MEDIUM) in _pairs(_scan(model, tmp_path))


def test_python_callback_op(tmp_path):
    node = helper.make_node("PythonOp", ["x"], ["y"], domain="com.microsoft", func_name=b"mymodule.Hook")
    findings = _scan(_model([node], ["com.microsoft"]), tmp_path)
    assert any(f.rule_id == "MLS-ONX-214" and "mymodule.Hook" in f.evidence for f in findings)


def test_ep_context_embedded_and_sidecar(tmp_path):
    embedded = helper.make_node("EPContext", ["x"], ["y"], domain="com.microsoft", embed_mode=1,
                                ep_cache_context=b"\x00QNNCTX" * 10, source=b"QNN")
    assert ("MLS-ONX-215", Severity.MEDIUM) in _pairs(_scan(_model([embedded], ["com.microsoft"]), tmp_path))
    sidecar = helper.make_node("EPContext", ["x"], ["y"], domain="com.microsoft", embed_mode=0,
                               ep_cache_context=b"../../../../tmp/engine.bin")
    findings = _scan(_model([sidecar], ["com.microsoft"]), tmp_path, "sidecar.onnx")
    assert any(f.rule_id == "MLS-ONX-201" and f.severity is Severity.CRITICAL for f in findings)


def test_native_library_next_to_a_model_with_custom_ops(tmp_path):
    (tmp_path / "libacme_ops.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 57)
    model = _model([helper.make_node("Decode", ["x"], ["y"], domain="com.acme.ops")], ["com.acme.ops"])
    findings = _scan(model, tmp_path)
    (finding,) = [f for f in findings if f.rule_id == "MLS-ONX-212"]
    assert finding.severity is Severity.CRITICAL and "libacme_ops.so" in finding.evidence


def test_native_library_without_custom_ops_is_left_to_the_engine(tmp_path):
    (tmp_path / "libhelper.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 57)
    model = _model([helper.make_node("Relu", ["x"], ["y"])])
    assert _pairs(_scan(model, tmp_path)) == set()
    # Scanning the directory reports the binary itself (MLS-GEN-007), once.
    assert "MLS-GEN-007" in {f.rule_id for f in scan_paths(tmp_path).findings}


def test_model_that_names_a_native_library(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"])])
    entry = model.metadata_props.add()
    entry.key, entry.value = "custom_op_library", "libfastattn.so"
    assert ("MLS-ONX-212", Severity.MEDIUM) in _pairs(_scan(model, tmp_path))


def test_unknown_operator_in_the_standard_domain(tmp_path):
    model = _model([helper.make_node("Relu2", ["x"], ["y"])])
    assert ("MLS-ONX-230", Severity.LOW) in _pairs(_scan(model, tmp_path))
