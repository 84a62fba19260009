"""Malformed models never crash the ONNX analyzer (a crash would only be caught by the engine's
MLS-GEN-002 safety net): byte flips, non-UTF-8 names, and structurally wrong graphs (ops with
attributes of the wrong type, dangling inputs, impossible dims, control flow without bodies)."""

from __future__ import annotations

import copy
import random

import pytest

onnx = pytest.importorskip("onnx")

from onnx import AttributeProto, TensorProto, helper  # noqa: E402

from fixtures.builders import onnx as samples  # noqa: E402
from scanner.analyzers.interface import Artifact, ScanContext  # noqa: E402
from scanner.analyzers.onnx import OnnxAnalyzer  # noqa: E402
from scanner.core.blob import BytesBlob  # noqa: E402
from scanner.core.finding import Finding, Location, Severity  # noqa: E402
from scanner.core.limits import Limits  # noqa: E402
from scanner.core.rules import load_catalogue  # noqa: E402
from scanner.formats.sniff import sniff  # noqa: E402

CTX = ScanContext(load_catalogue(), Limits())
NAMES = sorted(set(samples.MALICIOUS) | set(samples.BENIGN))
OPS = ["Slice", "Gather", "Reshape", "Unsqueeze", "Squeeze", "ReduceMax", "ReduceSum", "Concat", "Transpose",
       "Flatten", "Expand", "Tile", "ConstantOfShape", "Resize", "Range", "Pad", "Conv", "MaxPool", "Gemm",
       "MatMul", "Where", "If", "Loop", "Scan", "Split", "ArgMax", "Clip", "Constant", "RandomNormal", "OneHot"]
ATTRS = ["axes", "axis", "keepdims", "perm", "starts", "ends", "kernel_shape", "strides", "pads", "auto_pad",
         "shape", "num_scan_inputs", "value", "value_ints", "transB", "max", "embed_mode"]


def analyze(data: bytes) -> list:
    blob = BytesBlob(data)
    return list(OnnxAnalyzer().analyze(Artifact(Location("fuzz.onnx"), blob, "fuzz.onnx"), CTX))


def _attribute(rng: random.Random, name: str):
    kind = rng.randrange(5)
    if kind == 0:
        return helper.make_attribute(name, rng.randint(-5, 1 << 40))
    if kind == 1:
        return helper.make_attribute(name, [rng.randint(-9, 9) for _ in range(rng.randint(1, 6))])
    if kind == 2:
        return helper.make_attribute(name, b"\xff\xfe" if rng.random() < 0.5 else b"SAME_UPPER")
    if kind == 3:
        return helper.make_attribute(name, helper.make_tensor("t", TensorProto.INT64, [2], [1 << 40, -3]))
    attr = AttributeProto(name=name, i=3)  # untyped, two fields set
    attr.ints.extend([1, 2])
    return attr


def test_byte_flips_never_crash():
    rng = random.Random(1234)
    blobs = [samples.build_model(n).SerializeToString() for n in NAMES]
    analyzed = 0
    for _ in range(600):
        data = bytearray(rng.choice(blobs))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if sniff(BytesBlob(bytes(data))).format.value == "onnx":
            analyzed += 1
            assert all(isinstance(item, (Finding, Artifact)) for item in analyze(bytes(data)))
    assert analyzed > 500


def test_structural_mutations_never_crash():
    rng = random.Random(99)
    models = [samples.build_model(n) for n in NAMES]
    for _ in range(400):
        model = copy.deepcopy(rng.choice(models))
        nodes = list(model.graph.node)
        if not nodes:
            continue
        for _ in range(rng.randint(1, 5)):
            node = rng.choice(nodes)
            choice = rng.randrange(5)
            if choice == 0:
                node.op_type = rng.choice(OPS)
            elif choice == 1:
                node.attribute.append(_attribute(rng, rng.choice(ATTRS)))
            elif choice == 2 and node.input:
                node.input[rng.randrange(len(node.input))] = rng.choice(["", "dangling", nodes[0].output[0]])
            elif choice == 3 and model.graph.initializer:
                rng.choice(model.graph.initializer).dims.append(rng.choice([-1, 0, 1 << 62]))
            else:
                del node.input[:]
        analyze(model.SerializeToString())


def test_names_that_are_not_utf8_are_reported_not_crashed_on(tmp_path):
    data = samples.build_model("backdoor_where.onnx").SerializeToString()
    # Rename the Where node's output "output" (and the graph output) to invalid UTF-8 bytes of
    # the same length: protobuf (proto2) hands such strings back as bytes.
    data = data.replace(b"output", b"outp\xffX")
    findings = [f for f in analyze(data) if isinstance(f, Finding)]
    assert any(f.rule_id == "MLS-ONX-230" and "UTF-8" in f.evidence for f in findings)
    assert any(f.rule_id == "MLS-ONX-101" and f.severity is Severity.CRITICAL for f in findings)


def test_window_op_without_outputs_does_not_crash_the_backdoor_check():
    """Found by fuzzing: a Slice/Gather node with no outputs in a mutated backdoor sample."""
    import onnx
    from onnx import TensorProto, helper

    from tests.test_robustness_fuzz import scan_bytes

    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [2])
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "starts", "ends"], []),
         helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [starts, ends])
    data = helper.make_model(graph).SerializeToString()
    assert scan_bytes(data, "m.onnx").errors == []
    assert onnx
