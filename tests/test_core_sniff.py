"""Format sniffing decides by content, never by name."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile

import pytest

from scanner.core.blob import BytesBlob
from scanner.formats.interface import Format
from scanner.formats.sniff import sniff


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_binary_pickles_are_pickles(protocol):
    data = pickle.dumps({"a": [1, 2.5, "x"]}, protocol=protocol)
    assert sniff(BytesBlob(data)).format is Format.PICKLE


@pytest.mark.parametrize("protocol", [0, 1])
def test_headerless_pickles_with_imports_are_pickles(protocol):
    from collections import OrderedDict

    data = pickle.dumps(OrderedDict(a=1.5), protocol=protocol)
    assert sniff(BytesBlob(data)).format is Format.PICKLE


def test_protocol0_payload_is_a_pickle_even_if_it_is_ascii():
    data = b"cposix\nsystem\n(S'true'\ntR."
    assert sniff(BytesBlob(data)).format is Format.PICKLE


def test_broken_protocol0_payload_is_still_a_pickle():
    data = b"cposix\nsystem\n(S'true'\ntR\xff\xfe garbage"
    assert sniff(BytesBlob(data)).format is Format.PICKLE


@pytest.mark.parametrize("text", [
    b"# A model card\n\nThis model is great.\n",
    b"(hello world) and more text\n",
    b"cat videos are good\nreally\n",
    b"I love this\n",
])
def test_plain_text_is_not_a_pickle(text):
    assert sniff(BytesBlob(text)).format is Format.TEXT


def test_json_is_json():
    assert sniff(BytesBlob(json.dumps({"architectures": ["X"]}).encode())).format is Format.JSON


@pytest.mark.parametrize(("data", "fmt"), [
    (b"", Format.EMPTY),
    (b"\x93NUMPY\x01\x00", Format.NUMPY),
    (b"GGUF\x03\x00\x00\x00", Format.GGUF),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 8, Format.HDF5),
    (b"\x1f\x8b\x08\x00", Format.GZIP),
    (b"BZh91AY&SY", Format.BZIP2),
    (b"\xfd7zXZ\x00\x00", Format.XZ),
    (b"7z\xbc\xaf\x27\x1c\x00\x04", Format.SEVENZIP),
    (b"\x7fELF\x02\x01\x01", Format.ELF),
    (b"\x00\x01\x02\x03\xff\xfe", Format.UNKNOWN),
])
def test_magic_bytes(data, fmt):
    assert sniff(BytesBlob(data)).format is fmt


def test_zip_by_magic_not_name():
    assert sniff(BytesBlob(_zip_bytes())).format is Format.ZIP


def test_safetensors_by_header_shape():
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    data = struct.pack("<Q", len(header)) + header + b"\x00" * 4
    assert sniff(BytesBlob(data)).format is Format.SAFETENSORS


def test_onnx_is_told_apart_from_tensorflow_by_fields():
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])])
    model = helper.make_model(graph)
    assert sniff(BytesBlob(model.SerializeToString())).format is Format.ONNX
    # SavedModel: field 1 varint (schema version), field 2 message (meta graph)
    saved_model = b"\x08\x01\x12\x02\x0a\x00"
    assert sniff(BytesBlob(saved_model)).format is Format.TF_SAVEDMODEL
    assert onnx  # imported
