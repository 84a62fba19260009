"""Keras configs: the whole tree is walked (nested Lambdas), object references outside Keras,
non-modelling APIs, TorchModuleWrapper payloads and lookup files; ordinary JSON is ignored."""

from __future__ import annotations

import json

import pytest

from fixtures.builders.keras import dense, keras_archive, lambda_layer, layer, sequential
from tests.conftest import rule_ids, scan_paths


def test_deeply_nested_lambda_is_found(tmp_path):
    config = sequential([sequential([sequential([lambda_layer()], "b")], "a")])
    path = tmp_path / "m.keras"
    path.write_bytes(keras_archive(config))
    (finding,) = [f for f in scan_paths(path).findings if f.rule_id == "MLS-KER-001"]
    assert "layers[0].config.layers[0].config.layers[0]" in finding.location.node
    assert "system" in finding.evidence and "marshalled bytecode" in finding.evidence


def test_standalone_keras_json_config_is_analyzed(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(sequential([dense(), layer("check_output", {}, "subprocess")])))
    assert "MLS-KER-002" in rule_ids(scan_paths(path))


def test_non_keras_json_is_ignored(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "module": "os", "hidden_size": 8}))
    assert scan_paths(path).findings == []


def test_custom_registered_object_is_medium(tmp_path):
    path = tmp_path / "m.keras"
    custom = {**dense(), "registered_name": "my_package>MyDense"}
    path.write_bytes(keras_archive(sequential([custom])))
    findings = [f for f in scan_paths(path).findings if f.rule_id == "MLS-KER-006"]
    assert findings and int(findings[0].severity) == 2


def test_config_nesting_limit(tmp_path):
    from scanner.core.limits import Limits
    from scanner.engine import Scanner, ScanOptions

    config = dense()
    for i in range(40):
        config = sequential([config], f"s{i}")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = Scanner(ScanOptions(limits=Limits(nesting_depth=20))).scan([path])
    assert "MLS-KER-007" in rule_ids(result)


def test_corrupt_h5_fails_closed(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    assert "MLS-GEN-003" in rule_ids(scan_paths(path))


def test_h5_without_h5py_fails_closed(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "h5py", None)  # import raises ImportError
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    (finding,) = scan_paths(path).findings
    assert finding.rule_id == "MLS-GEN-003" and "mlscan[h5]" in finding.evidence


def test_legacy_h5_lambda_in_model_config(tmp_path):
    h5py = pytest.importorskip("h5py")
    legacy = sequential([dense(), {"class_name": "Lambda", "config": {
        "name": "l", "function": ["4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMIAAAAZABTACkBTqkAKQHaAXhyAQAAAHIBAAAA+gZvc3lzdGVt",
                                  None, None], "function_type": "lambda"}}])
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(legacy)
        handle.create_dataset("weights", data=[1.0, 2.0])
    findings = scan_paths(path).findings
    assert [f.rule_id for f in findings if f.rule_id == "MLS-KER-001"] == ["MLS-KER-001"]
    weights_only = tmp_path / "weights.h5"
    with h5py.File(weights_only, "w") as handle:
        handle.create_dataset("w", data=[1.0])
    assert {f.rule_id for f in scan_paths(weights_only).findings} == {"MLS-KER-008"}
