"""Keras config walker: the whole JSON tree, recursively (a Lambda nested in an inner
Sequential is the modelscan bypass), for code-carrying layers and object references that
safe_mode trusts. Lambda bytecode is decoded only to list the strings visible in it; it is never
unmarshalled."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.blob import BytesBlob
from scanner.core.finding import Finding, Location
from scanner.core.tomlcompat import load_toml
from scanner.formats.interface import Format

MAX_BYTECODE = 4 << 20
PRINTABLE = re.compile(rb"[\x20-\x7e]{3,}")


@lru_cache(maxsize=1)
def _policy() -> dict[str, Any]:
    from signatures import data_dir

    return load_toml(data_dir() / "keras.toml")


def looks_like_keras(tree: object) -> bool:
    return isinstance(tree, dict) and "class_name" in tree and "config" in tree


def _b64(text: object) -> bytes | None:
    if not isinstance(text, str) or len(text) > MAX_BYTECODE * 2:
        return None
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return None


def visible_strings(code: bytes, limit: int = 12) -> str:
    """Printable runs in marshal data: names and string constants, shown as evidence."""
    names = [m.group(0).decode() for m in PRINTABLE.finditer(code)]
    return ", ".join(list(dict.fromkeys(names))[:limit])


class KerasConfigAnalyzer(Analyzer):
    name = "keras"
    formats = frozenset({Format.JSON})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        if artifact.blob.size > ctx.limits.header_bytes:
            return  # not a model config; large JSON (tokenizers) is data
        try:
            tree = json.loads(artifact.blob.read_at(0, artifact.blob.size))
        except (ValueError, RecursionError):
            return  # sniffing confirmed JSON for small files; anything else is not a config
        if not looks_like_keras(tree):
            return
        yield from self._walk(tree, artifact, ctx, "$", 0)

    def _walk(self, node: Any, artifact: Artifact, ctx: ScanContext, path: str,
              depth: int) -> Iterator[Finding | Artifact]:
        if depth > ctx.limits.nesting_depth:
            yield ctx.finding("MLS-KER-007", artifact.location.at(node=path),
                              f"config nests deeper than {ctx.limits.nesting_depth} levels; not fully walked")
            return
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from self._walk(item, artifact, ctx, f"{path}[{i}]", depth + 1)
            return
        if not isinstance(node, dict):
            return
        yield from self._check(node, artifact, ctx, artifact.location.at(node=path))
        for key, value in node.items():
            yield from self._walk(value, artifact, ctx, f"{path}.{key}", depth + 1)

    def _check(self, obj: dict[str, Any], artifact: Artifact, ctx: ScanContext,
               loc: Location) -> Iterator[Finding | Artifact]:
        policy = _policy()
        class_name = obj.get("class_name")
        raw_config = obj.get("config")
        config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
        module = obj.get("module")
        wrapped = isinstance(config.get("function"), dict) and config["function"].get("class_name") == "__lambda__"
        # Keras 3 wraps the code in a "__lambda__" object that reports itself; Keras 2 keeps
        # it (with function_type) in the Lambda layer's own config
        if class_name == "__lambda__" or (class_name == "Lambda" and not wrapped):
            yield from self._lambda(obj, config, ctx, loc)
        if isinstance(module, str) and module and "class_name" in obj:  # a serialized object
            root = module.split(".")[0]
            full = f"{module}.{class_name}" if isinstance(class_name, str) else module
            if root not in policy["allowed_module_roots"] or (
                    root == "builtins" and full not in policy["builtins_allowed"]):
                yield ctx.finding("MLS-KER-002", loc, f"object from module '{module}' "
                                  f"(class_name {class_name!r}): Keras imports it while loading, even "
                                  "with safe_mode (CVE-2025-1550)")
            elif isinstance(class_name, str) and class_name.split(".")[-1] in policy["non_modelling_apis"]:
                yield ctx.finding("MLS-KER-003", loc, f"references Keras non-modelling API {full}"
                                  + (f" with arguments {json.dumps(config)[:200]}" if config else ""))
        registered = obj.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            yield ctx.finding("MLS-KER-006", loc, f"custom object '{registered}' requires user code "
                              "registered at load time")
        if class_name == "TorchModuleWrapper":
            payload = _b64(config.get("module"))
            yield ctx.finding("MLS-KER-004", loc, "TorchModuleWrapper embeds a pickled torch module "
                              f"({len(payload) if payload else 0} bytes); loading unpickles it "
                              "(CVE-2025-49655). The payload is analyzed as a nested artifact.")
            if payload:
                yield Artifact(loc.child("<TorchModuleWrapper.module>"), BytesBlob(payload), "module.pt", 0)
        if class_name in policy["file_reading_layers"]:
            for key in ("vocabulary", "vocabulary_path", "idf_weights"):
                value = config.get(key)
                if isinstance(value, str) and value:
                    yield ctx.finding("MLS-KER-005", loc, f"{class_name}.{key} = {value[:200]!r}: the layer "
                                      "reads this file or URL when the model is loaded")

    @staticmethod
    def _lambda(obj: dict[str, Any], config: dict[str, Any], ctx: ScanContext,
                loc: Location) -> Iterator[Finding]:
        function = config.get("function", obj.get("function"))
        code: bytes | None = None
        if isinstance(function, dict):  # Keras 3: {"class_name": "__lambda__", "config": {"code": b64}}
            inner = function.get("config")
            code = _b64((inner if isinstance(inner, dict) else function).get("code"))
        elif isinstance(function, list) and function:  # Keras 2: [b64 bytecode, defaults, closure]
            code = _b64(function[0])
        elif obj.get("class_name") == "__lambda__":
            code = _b64(config.get("code"))
        if code is None and function is None:
            return
        detail = (f"{len(code)} bytes of marshalled bytecode; names and constants visible in it: "
                  f"{visible_strings(code) or '(none)'}") if code else f"function reference {str(function)[:200]}"
        yield ctx.finding("MLS-KER-001", loc, f"Lambda layer: {detail}. Deserializing it runs Python code "
                          "(CVE-2024-3660); never unmarshalled here.")


class KerasWeightsAnalyzer(Analyzer):
    """HDF5 files: legacy Keras ``.h5`` models keep their config (Lambdas included) in the
    ``model_config`` root attribute. With the optional ``h5py`` extra it is read (attributes
    only, no datasets) and walked like a ``.keras`` config; without it a standalone file fails
    closed at high, while ``model.weights.h5`` inside a ``.keras`` (datasets only) is low."""

    name = "keras-h5"
    formats = frozenset({Format.HDF5})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        try:
            import h5py
        except ImportError:
            yield from self._uninspected(artifact, ctx, "install mlscan[h5] (h5py) to inspect it")
            return
        try:
            with h5py.File(artifact.blob.open(), "r") as handle:
                raw = handle.attrs.get("model_config")
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on corrupt files
            yield ctx.finding("MLS-GEN-003", artifact.location, f"HDF5 file h5py cannot read: {exc}")
            return
        if raw is None:
            yield ctx.finding("MLS-KER-008", artifact.location,
                              f"{artifact.blob.size}-byte HDF5 file without a model_config (weights only)")
            return
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        try:
            tree = json.loads(text)
        except (ValueError, RecursionError) as exc:
            yield ctx.finding("MLS-GEN-003", artifact.location, f"model_config is not JSON: {exc}")
            return
        yield from KerasConfigAnalyzer()._walk(tree, artifact, ctx, "model_config", 0)

    @staticmethod
    def _uninspected(artifact: Artifact, ctx: ScanContext, advice: str) -> Iterator[Finding]:
        if artifact.location.members and artifact.name.rsplit("/", 1)[-1] == "model.weights.h5":
            yield ctx.finding("MLS-KER-008", artifact.location,
                              f"{artifact.blob.size}-byte HDF5 weights file, not parsed ({advice})")
        else:
            yield ctx.finding("MLS-GEN-003", artifact.location,
                              "HDF5 file (a legacy Keras .h5 model can carry Lambda bytecode in its "
                              f"model_config attribute) that mlscan cannot inspect here; {advice}, or "
                              "convert the model to .keras or safetensors.")
