"""TOML loading on every supported Python (tomllib from 3.11, the tomli backport before)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib


def load_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def loads_toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)
