"""Builders for integrity tests: a realistic model directory, keys, and CLI verify calls."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from click.testing import CliRunner


def make_model(root: Path) -> Path:
    """A small Hugging Face-style model directory: config, safetensors weights, tokenizer
    files in a subdirectory, and an empty file (empty files must be covered too)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 8}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header
                                             + bytes(range(64)))
    (root / "tokenizer").mkdir(exist_ok=True)
    (root / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\nworld\n")
    (root / "tokenizer" / "special_tokens_map.json").write_text("{}")
    (root / "empty.txt").write_bytes(b"")
    return root


def cli(*args: object, env: dict[str, str] | None = None):
    from scanner.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def verify_json(*args: object, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = cli("verify", "--format", "json", "--no-cache", *args, env=env)
    assert result.stdout.lstrip().startswith("{"), result.output
    return result.exit_code, json.loads(result.stdout)


def ids(report: dict) -> dict[str, str]:
    """rule id -> severity of the report's findings (one per id is enough for most tests)."""
    return {f["rule_id"]: f["severity"] for f in report["findings"]}


def keypair(tmp: Path, name: str = "publisher", key_type: str = "ecdsa-p256") -> tuple[Path, Path]:
    result = cli("keygen", "--out", tmp / name, "--type", key_type)
    assert result.exit_code == 0, result.output
    return tmp / f"{name}.key", tmp / f"{name}.pub"
