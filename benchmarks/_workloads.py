"""Benchmark inputs, built fast and without the libraries that would load them.

Big files repeat one random block (entries are stored, not compressed, so repetition costs the
scanner nothing it would not pay on real weights). Pickles that imitate ``torch.save`` are
assembled opcode by opcode, so torch is not needed; no input is ever unpickled.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

BLOCK_SIZE = 16 << 20
MiB = 1 << 20


class Blocks:
    """Writes ``n`` bytes by repeating one random block (one ``os.urandom`` call per run)."""

    def __init__(self, size: int = BLOCK_SIZE) -> None:
        self.block = os.urandom(size)
        self.view = memoryview(self.block)

    def write(self, handle: BinaryIO, n: int) -> None:
        while n > 0:
            step = min(n, len(self.block))
            handle.write(self.view[:step])
            n -= step


# --- a torch.save-shaped data.pkl, assembled by hand ------------------------------------------

def _unicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(1 << 31) <= value < (1 << 31):
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _tuple(items: list[int]) -> bytes:
    return b"(" + b"".join(_int(i) for i in items) + b"t"


def torch_state_dict_pickle(tensors: list[tuple[str, str, tuple[int, ...]]]) -> bytes:
    """Protocol-2 pickle with the same opcodes ``torch.save(state_dict)`` writes: an
    OrderedDict of ``torch._utils._rebuild_tensor_v2`` calls whose storages are persistent ids
    ``('storage', torch.FloatStorage, key, 'cpu', numel)``."""
    out = bytearray(b"\x80\x02ccollections\nOrderedDict\n)R(")
    for name, key, shape in tensors:
        numel = 1
        for dim in shape:
            numel *= dim
        stride = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            stride[i] = stride[i + 1] * shape[i + 1]
        out += _unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode(key) + _unicode("cpu")
        out += _int(numel) + b"tQ"                       # BINPERSID: the storage reference
        out += _int(0) + _tuple(list(shape)) + _tuple(stride)
        out += b"\x89ccollections\nOrderedDict\n)R"      # requires_grad=False, backward hooks
        out += b"tR"
    out += b"u."
    return bytes(out)


def build_torch_zip(path: Path, size: int, blocks: Blocks, tensor_bytes: int = 64 * MiB) -> int:
    """A PyTorch zip checkpoint of about ``size`` bytes: stored members laid out as
    ``torch.save`` does (archive/data.pkl, archive/data/N, version, byteorder)."""
    count = max(1, -(-size // tensor_bytes))
    sizes = [tensor_bytes] * (count - 1) + [max(4096, size - tensor_bytes * (count - 1))]
    sizes = [s - s % 4096 for s in sizes]
    tensors = [(f"layers.{i}.weight", str(i), (s // 4 // 1024, 1024)) for i, s in enumerate(sizes)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("archive/data.pkl", torch_state_dict_pickle(tensors))
        zf.writestr("archive/byteorder", "little")
        for i, nbytes in enumerate(sizes):
            with zf.open(f"archive/data/{i}", "w", force_zip64=True) as member:
                blocks.write(member, nbytes)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/.data/serialization_id", "1234567890123456789012345678901234567890")
    return path.stat().st_size


# --- W3: many small realistic pickles -----------------------------------------------------------

def _numpy_array_pickle(rows: int, index: int) -> bytes | None:
    """A real pickled ndarray (numpy's _reconstruct REDUCE), when numpy is installed."""
    try:
        import numpy as np
    except ImportError:
        return None
    rng = np.random.default_rng(index)
    return pickle.dumps({"weights": rng.standard_normal((rows, 8)).astype(np.float32),
                         "bias": rng.standard_normal(8).astype(np.float32)}, protocol=4)


def small_pickle(index: int) -> bytes:
    """A few KB: training-state-like dicts of lists and floats; one in three an OrderedDict
    (REDUCE of collections.OrderedDict), one in four a numpy array pickle."""
    rows = 20 + index % 40
    if index % 4 == 3:
        data = _numpy_array_pickle(rows, index)
        if data is not None:
            return data
    values = [[(i * 31 + j * 7 + index) % 997 / 997.0 for j in range(8)] for i in range(rows)]
    state: dict[str, object] = {
        "epoch": index % 50, "lr": 0.001 * (1 + index % 7), "loss_history": values[0] * 4,
        "weights": values, "names": [f"feature_{k}" for k in range(16)],
        "config": {"hidden": 256, "dropout": 0.1, "activation": "gelu", "tags": ("bench", str(index))},
    }
    if index % 3 == 0:
        return pickle.dumps(collections.OrderedDict(state), protocol=2 + index % 3)
    return pickle.dumps(state, protocol=2 + index % 3)


def build_small_pickles(directory: Path, count: int) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        data = small_pickle(i)
        (directory / f"state_{i:04d}.pkl").write_bytes(data)
        total += len(data)
    return total


# --- W4: a big legacy (non-zip) pickle of byte strings ------------------------------------------

def build_legacy_pickle(path: Path, size: int, blocks: Blocks, value_bytes: int = 4 * MiB) -> int:
    """Protocol-4 pickle of a dict: a small config and many ``value_bytes`` byte strings,
    alternating BINBYTES8 and BINBYTES, streamed to disk (never built in memory)."""
    count = max(1, size // value_bytes)
    with open(path, "wb") as handle:
        handle.write(b"\x80\x04}(")                                   # PROTO 4, EMPTY_DICT, MARK
        handle.write(b"\x8c\x06config]("                              # 'config': [floats]
                     + b"".join(b"G" + struct.pack(">d", i / 3) for i in range(64)) + b"e")
        for i in range(count):
            key = f"shard_{i:05d}".encode()
            handle.write(b"\x8c" + bytes([len(key)]) + key)           # SHORT_BINUNICODE
            if i % 2:
                handle.write(b"B" + struct.pack("<I", value_bytes))   # BINBYTES
            else:
                handle.write(b"\x8e" + struct.pack("<Q", value_bytes))  # BINBYTES8
            blocks.write(handle, value_bytes)
        handle.write(b"u.")                                           # SETITEMS, STOP
    return path.stat().st_size


# --- W5: safetensors and ONNX with external data --------------------------------------------------

def build_safetensors(path: Path, size: int, blocks: Blocks, tensor_bytes: int = 64 * MiB) -> int:
    """A safetensors file per the spec: u64 LE header length, JSON header (padded with spaces
    to 8 bytes), then the tensor bytes in header order with no gaps."""
    count = max(1, size // tensor_bytes)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for i in range(count):
        header[f"model.layers.{i}.weight"] = {"dtype": "F32", "shape": [tensor_bytes // 4 // 1024, 1024],
                                              "data_offsets": [offset, offset + tensor_bytes]}
        offset += tensor_bytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        blocks.write(handle, offset)
    return path.stat().st_size


def build_onnx_external(directory: Path, size: int, blocks: Blocks, squares: int = 3) -> list[Path]:
    """``model.onnx`` (a chain of MatMuls) whose initializers live in ``weights.bin`` beside it
    (data_location EXTERNAL, offsets into one file written in chunks): one big input projection
    holding most of ``size``, then ``squares`` 1024x1024 float matrices."""
    from onnx import TensorProto, helper

    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "weights.bin"
    cols = 1024
    rows = max(1, (size - squares * cols * cols * 4) // (4 * cols))
    initializers, nodes = [], []
    current = "input"
    with open(weights, "wb") as handle:
        for i in range(squares + 1):
            dims = [rows, cols] if i == 0 else [cols, cols]
            tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=dims)
            tensor.data_location = TensorProto.EXTERNAL
            nbytes = dims[0] * dims[1] * 4
            for key, value in (("location", weights.name), ("offset", str(handle.tell())),
                               ("length", str(nbytes))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            blocks.write(handle, nbytes)
            initializers.append(tensor)
            out = "output" if i == squares else f"h{i}"
            nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [out], name=f"matmul{i}"))
            current = out
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", cols])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlscan-bench")
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return [path, weights]
