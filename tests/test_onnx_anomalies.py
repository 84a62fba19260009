"""Parser and runtime attack surface (MLS-ONX-001/002/220/221/230, MLS-GEN-012): memory bombs,
shapes that cannot match their data, nesting, versions, limits - each fails closed."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fixtures.builders import onnx as samples  # noqa: E402
from scanner.core.finding import Severity  # noqa: E402
from scanner.core.limits import Limits  # noqa: E402
from scanner.engine import Scanner, ScanOptions  # noqa: E402


def _model(nodes, inits=(), inputs=(), outputs=None, opset=17):
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "main_graph", list(inputs), outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _write(model_or_bytes, tmp_path, name="model.onnx"):
    path = tmp_path / name
    data = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
    path.write_bytes(data)
    return path


def _findings(model, tmp_path, **limits):
    path = _write(model, tmp_path)
    options = ScanOptions(limits=Limits(**limits)) if limits else None
    return Scanner(options).scan([str(path)]).findings


def _ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _floats(name, values):
    return numpy_helper.from_array(np.array(values, np.float32), name)


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])


@pytest.mark.parametrize(("nodes", "inits"), [
    # Shape assembled by Concat of constants: folded statically.
    ([helper.make_node("Concat", ["a", "b"], ["s"], axis=0), helper.make_node("ConstantOfShape", ["s"], ["y"])],
     [_ints("a", [1 << 16, 1 << 16]), _ints("b", [1 << 10])]),
    ([helper.make_node("Constant", [], ["s"], value_ints=[1 << 20, 1 << 20]),
      helper.make_node("Expand", ["x", "s"], ["y"])], []),
    ([helper.make_node("Tile", ["x", "r"], ["y"])], [_ints("r", [1, 1, 1 << 16, 1 << 16])]),
    ([helper.make_node("Resize", ["x", "", "sc"], ["y"])], [_floats("sc", [1, 1, 1000, 1000])]),
    ([helper.make_node("Range", ["st", "lim", "dl"], ["y"])], [_ints("st", 0), _ints("lim", 1 << 40), _ints("dl", 1)]),
    ([helper.make_node("RandomNormal", [], ["y"], shape=[1 << 16, 1 << 16])], []),
    ([helper.make_node("Pad", ["x", "p"], ["y"])], [_ints("p", [0, 0, 0, 0, 0, 0, 1 << 32, 0])]),
])
def test_memory_bombs(tmp_path, nodes, inits):
    findings = _findings(_model(nodes, inits, [X]), tmp_path)
    assert ("MLS-ONX-220", Severity.HIGH) in {(f.rule_id, f.severity) for f in findings}


def test_ordinary_constant_shapes_are_fine(tmp_path):
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["z"]), helper.make_node("Expand", ["x", "s4"], ["e"]),
             helper.make_node("Tile", ["x", "r"], ["y"])]
    inits = [_ints("s", [1, 512, 768]), _ints("s4", [1, 3, 8, 8]), _ints("r", [1, 1, 2, 2])]
    assert _findings(_model(nodes, inits, [X]), tmp_path) == []


def test_memory_bomb_inside_a_subgraph(tmp_path):
    body = helper.make_graph([helper.make_node("ConstantOfShape", ["big_shape"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    small = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=small)]
    model = _model(nodes, [_ints("big_shape", [1 << 30, 1 << 30])],
                   [X, helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    findings = _findings(model, tmp_path)
    assert any(f.rule_id == "MLS-ONX-220" and "then_branch" in (f.location.node or "") for f in findings)


@pytest.mark.parametrize("mutate", ["typed_short", "raw_short", "negative", "wrong_field", "no_data"])
def test_tensor_shape_that_cannot_match_its_data(tmp_path, mutate):
    tensor = _floats("w", np.zeros(8))
    if mutate == "typed_short":
        tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], float_data=[0.0] * 8)
    elif mutate == "raw_short":
        tensor.dims[:] = [4, 4]
    elif mutate == "negative":
        tensor.dims[:] = [-8]
    elif mutate == "wrong_field":
        tensor = helper.make_tensor("w", TensorProto.FLOAT, [2], [0.0, 0.0])
        tensor.int64_data.extend([1, 2])
    else:
        tensor.ClearField("raw_data")
    model = _model([helper.make_node("Identity", ["w"], ["y"])], [tensor])
    assert "MLS-ONX-220" in {f.rule_id for f in _findings(model, tmp_path)}


def test_constant_attribute_tensor_is_checked(tmp_path):
    tensor = TensorProto(name="v", data_type=TensorProto.INT64, dims=[1 << 40], int64_data=[1, 2, 3])
    model = _model([helper.make_node("Constant", [], ["y"], value=tensor)])
    findings = _findings(model, tmp_path)
    assert any(f.rule_id == "MLS-ONX-220" and "attribute 'value'" in f.evidence for f in findings)


def test_sparse_initializer_with_inconsistent_indices(tmp_path):
    values = _floats("sv", [1.0, 2.0, 3.0])
    sparse = helper.make_sparse_tensor(values, _ints("si", [0, 1]), [2, 2])
    model = _model([helper.make_node("Identity", ["sv"], ["y"])])
    model.graph.sparse_initializer.append(sparse)
    assert "MLS-ONX-220" in {f.rule_id for f in _findings(model, tmp_path)}


def test_ir_and_opset_anomalies(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"]),
                    helper.make_node("Gelu", ["y"], ["z"], domain="com.microsoft")], inputs=[X], opset=9999)
    model.opset_import.append(helper.make_opsetid("", 13))
    model.ir_version = 99
    findings = [f for f in _findings(model, tmp_path) if f.rule_id == "MLS-ONX-230"]
    assert findings and max(f.severity for f in findings) is Severity.MEDIUM
    text = " ".join(f.evidence for f in findings)
    assert "ir_version 99" in text and "9999" in text and "duplicate" in text and "com.microsoft" in text


def test_unknown_protobuf_fields_are_reported(tmp_path):
    data = samples.build_model("classifier.onnx").SerializeToString() + b"\xf8\x07\x05"  # field 127
    findings = _findings(data, tmp_path)
    assert any(f.rule_id == "MLS-ONX-230" and "127" in f.evidence and f.severity is Severity.MEDIUM
               for f in findings)


def test_deep_but_parseable_nesting_is_medium(tmp_path):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    for level in range(20):
        node = helper.make_node("If", ["c"], ["y"], then_branch=graph, else_branch=graph)
        graph = helper.make_graph([node], f"g{level}", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        if level > 1:  # keep the file small: only the then-branch keeps growing
            graph.node[0].attribute[1].g.CopyFrom(helper.make_graph(
                [helper.make_node("Identity", ["x"], ["y"])], "leaf", [],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]))
    model = _model(list(graph.node), inputs=[X, helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    findings = _findings(model, tmp_path)
    assert ("MLS-ONX-221", Severity.MEDIUM) in {(f.rule_id, f.severity) for f in findings}
    # Below the configured nesting limit nothing is skipped; above it the rest is not analyzed: high.
    findings = _findings(model, tmp_path, nesting_depth=5)
    assert ("MLS-ONX-221", Severity.HIGH) in {(f.rule_id, f.severity) for f in findings}


def test_nesting_beyond_the_protobuf_limit_fails_closed(tmp_path):
    findings = _findings(samples.nesting_too_deep(), tmp_path)
    assert [(f.rule_id, f.severity) for f in findings] == [("MLS-ONX-221", Severity.HIGH)]
    assert "nested 123 levels" in findings[0].evidence


def test_truncated_model_fails_closed(tmp_path):
    data = samples.build_model("classifier.onnx").SerializeToString()
    for cut in (40, 300, len(data) - 7):
        findings = _findings(data[:cut], tmp_path)
        assert [(f.rule_id, f.severity) for f in findings] == [("MLS-ONX-001", Severity.HIGH)], cut


def test_model_larger_than_the_limit_is_not_parsed(tmp_path):
    findings = _findings(samples.build_model("classifier.onnx"), tmp_path, onnx_model_bytes=256)
    assert [(f.rule_id, f.severity) for f in findings] == [("MLS-ONX-002", Severity.HIGH)]


def test_node_limit_fails_closed(tmp_path):
    findings = _findings(samples.build_model("classifier.onnx"), tmp_path, onnx_nodes=3)
    assert ("MLS-GEN-012", Severity.HIGH) in {(f.rule_id, f.severity) for f in findings}


def test_recursive_local_function_does_not_hang(tmp_path):
    body = [helper.make_node("Loopy", ["a"], ["b"], domain="rec")]
    function = helper.make_function("rec", "Loopy", ["a"], ["b"], body, [helper.make_opsetid("rec", 1)])
    model = _model([helper.make_node("Loopy", ["x"], ["y"], domain="rec")], inputs=[X])
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("rec", 1))
    findings = _findings(model, tmp_path)
    assert all(f.rule_id != "MLS-GEN-002" for f in findings)
