"""Graph-backdoor heuristic (MLS-ONX-101/102/103): every published trigger shape is caught, the
variants an attacker would try next are caught, and the benign look-alikes are not."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fixtures.builders import onnx as samples  # noqa: E402
from scanner.core.finding import FailureMode, Severity  # noqa: E402
from tests.conftest import scan_paths  # noqa: E402

BACKDOOR_RULES = {"MLS-ONX-101", "MLS-ONX-102", "MLS-ONX-103"}


def scan_model(model, tmp_path, name="model.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return scan_paths(path).findings


def backdoor_findings(findings):
    return [f for f in findings if f.rule_id in BACKDOOR_RULES]


@pytest.mark.parametrize(("sample", "rule", "severity"), [
    ("backdoor_where.onnx", "MLS-ONX-101", Severity.CRITICAL),
    ("backdoor_mul_add.onnx", "MLS-ONX-101", Severity.CRITICAL),
    ("backdoor_if.onnx", "MLS-ONX-101", Severity.CRITICAL),
    ("backdoor_op_trigger.onnx", "MLS-ONX-101", Severity.CRITICAL),
    ("backdoor_in_function.onnx", "MLS-ONX-101", Severity.CRITICAL),
    ("backdoor_intermediate_splice.onnx", "MLS-ONX-101", Severity.CRITICAL),
    ("backdoor_llm_steer.onnx", "MLS-ONX-102", Severity.HIGH),
    ("backdoor_trojannet.onnx", "MLS-ONX-103", Severity.HIGH),
])
def test_published_trigger_shapes_are_reported(tmp_path, sample, rule, severity):
    found = backdoor_findings(scan_model(samples.build_model(sample), tmp_path))
    assert [(f.rule_id, f.severity) for f in found] == [(rule, severity)]
    assert found[0].failure_mode is FailureMode.BACKDOOR


def test_evidence_names_the_trigger_path_thresholds_and_payload(tmp_path):
    (finding,) = backdoor_findings(scan_model(samples.build_model("backdoor_where.onnx"), tmp_path))
    evidence = finding.evidence
    assert "input 'image' -> Slice('/Slice') -> Greater('/Greater') -> Cast('/Cast') -> ReduceMin" in evidence
    assert "0.99" in evidence and "0.5" in evidence
    assert "calib (constant, shape [1, 10])" in evidence
    assert "logits (learned" in evidence
    assert finding.location.node == "main:/Where"


def test_trigger_inside_function_is_located_in_the_function(tmp_path):
    (finding,) = backdoor_findings(scan_model(samples.build_model("backdoor_in_function.onnx"), tmp_path))
    assert "pkg.postprocess::Calibrate" in finding.location.node


# --- variants an attacker would try ----------------------------------------------------------

def _replace_nodes(model, nodes, extra_inits=()):
    graph = model.graph
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(extra_inits)
    return model


def test_trigger_broadcast_with_expand_before_the_gate(tmp_path):
    model = samples.build_model("backdoor_where.onnx")
    nodes = list(model.graph.node)
    where = nodes[-1]
    nodes[-1:] = [helper.make_node("Expand", ["/Greater_1_output_0", "shape10"], ["wide"], name="/Expand"),
                  helper.make_node("Where", ["wide", where.input[1], where.input[2]], ["output"], name="/Where")]
    _replace_nodes(model, nodes, [numpy_helper.from_array(np.array([1, 10], np.int64), "shape10")])
    assert {f.rule_id for f in backdoor_findings(scan_model(model, tmp_path))} == {"MLS-ONX-101"}


def test_trigger_mixed_with_a_learned_condition_is_still_a_trigger(tmp_path):
    model = samples.build_model("backdoor_where.onnx")
    nodes = list(model.graph.node)
    where = nodes[-1]
    nodes[-1:] = [
        helper.make_node("ReduceMax", ["logits"], ["lmax"], name="/ReduceMax", keepdims=0),
        helper.make_node("Greater", ["lmax", "floor"], ["alive"], name="/Greater_2"),
        helper.make_node("And", ["/Greater_1_output_0", "alive"], ["both"], name="/And"),
        helper.make_node("Where", ["both", where.input[1], where.input[2]], ["output"], name="/Where")]
    _replace_nodes(model, nodes, [numpy_helper.from_array(np.array(-1e30, np.float32), "floor")])
    assert {f.rule_id for f in backdoor_findings(scan_model(model, tmp_path))} == {"MLS-ONX-101"}


def test_opset18_reduction_axes_given_as_an_input(tmp_path):
    model = samples.build_model("backdoor_mul_add.onnx")
    for node in model.graph.node:
        if node.op_type == "ReduceMax":
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("keepdims", 0))
            node.input.append("red_axes")
    model.graph.initializer.append(numpy_helper.from_array(np.array([1, 2], np.int64), "red_axes"))
    model.opset_import[0].version = 18
    assert {f.rule_id for f in backdoor_findings(scan_model(model, tmp_path))} == {"MLS-ONX-101"}


def test_if_condition_is_a_trigger_even_when_its_shape_cannot_be_inferred(tmp_path):
    # Resize makes every dim unknown; an If condition is one value by definition anyway.
    model = samples.build_model("backdoor_if.onnx")
    nodes = list(model.graph.node)
    slice_index = next(i for i, n in enumerate(nodes) if n.op_type == "Slice")
    nodes.insert(slice_index + 1, helper.make_node("Resize", ["/Slice_output_0", "", "scales"], ["/rs"],
                                                   name="/Resize"))
    for node in nodes:
        if node.op_type == "ReduceMean":
            node.input[0] = "/rs"
    _replace_nodes(model, nodes, [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    assert {f.rule_id for f in backdoor_findings(scan_model(model, tmp_path))} == {"MLS-ONX-101"}


def test_trigger_in_a_nested_subgraph(tmp_path):
    """The whole gate sits inside the else-branch of a harmless shape If."""
    inner = samples.build_model("backdoor_where.onnx").graph
    then_graph = helper.make_graph([helper.make_node("Identity", ["logits_outer"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch", 10])])
    cls_nodes = [n for n in inner.node if n.output[0] in (
        "/conv/Conv_output_0", "/relu/Relu_output_0", "/pool/GAP_output_0", "/Flatten_output_0", "logits")]
    trig_nodes = [n for n in inner.node if n not in cls_nodes]
    for node in trig_nodes:
        if node.op_type == "Where":
            node.input[2] = "logits_outer"
            node.output[0] = "e"
    else_graph = helper.make_graph(trig_nodes, "else", [], [
        helper.make_tensor_value_info("e", TensorProto.FLOAT, ["batch", 10])])
    outer_nodes = cls_nodes + [
        helper.make_node("Identity", ["logits"], ["logits_outer"]),
        helper.make_node("Shape", ["image"], ["shp"]),
        helper.make_node("Gather", ["shp", "zero"], ["b"], axis=0),
        helper.make_node("Greater", ["b", "big"], ["huge_batch"]),
        helper.make_node("If", ["huge_batch"], ["output"], name="/batch_switch", then_branch=then_graph,
                         else_branch=else_graph)]
    inits = list(inner.initializer) + [numpy_helper.from_array(np.array(0, np.int64), "zero"),
                                       numpy_helper.from_array(np.array(1 << 20, np.int64), "big")]
    graph = helper.make_graph(outer_nodes, "main_graph", list(inner.input), list(inner.output), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    found = backdoor_findings(scan_model(model, tmp_path))
    assert [f.rule_id for f in found] == ["MLS-ONX-101"]
    assert "batch_switch.else_branch" in found[0].location.node


def test_value_info_annotations_cannot_hide_a_trigger(tmp_path):
    """The scanner infers shapes itself: declaring the trigger [batch, 10] changes nothing."""
    model = samples.build_model("backdoor_where.onnx")
    model.graph.value_info.append(
        helper.make_tensor_value_info("/Greater_1_output_0", TensorProto.BOOL, ["batch", 10]))
    assert {f.rule_id for f in backdoor_findings(scan_model(model, tmp_path))} == {"MLS-ONX-101"}


# --- benign look-alikes ------------------------------------------------------------------------

@pytest.mark.parametrize("sample", sorted(samples.BENIGN))
def test_benign_look_alikes_are_not_backdoors(tmp_path, sample):
    findings = scan_model(samples.build_model(sample), tmp_path)
    assert backdoor_findings(findings) == []
    assert [f for f in findings if f.severity >= Severity.HIGH] == []


def test_input_threshold_feeding_only_preprocessing_is_not_reported(tmp_path):
    """autoscale: the trigger exists (max(x) > 1) but its payload is the raw input that the
    network then consumes - no constant, no merge into a learned value."""
    findings = scan_model(samples.build_model("autoscale_where.onnx"), tmp_path)
    assert backdoor_findings(findings) == []


def test_labels_that_never_reach_the_network_are_not_a_trigger_source(tmp_path):
    findings = scan_model(samples.build_model("loss_ignore_index.onnx"), tmp_path)
    assert backdoor_findings(findings) == []
    # ... but the same circuit reading the image is one.
    model = samples.build_model("loss_ignore_index.onnx")
    for node in model.graph.node:
        if node.op_type == "Unsqueeze" and node.input[0] == "labels":
            node.op_type = "ReduceMax"
            node.input[:] = ["image"]
            node.attribute.append(helper.make_attribute("keepdims", 0))
    found = backdoor_findings(scan_model(model, tmp_path, "probe.onnx"))
    assert found and found[0].severity >= Severity.HIGH
