"""Detection data shipped with mlscan: rule definitions and allow/deny lists.

This package holds data only. It is a package so that the files travel inside the wheel and can
be found with ``importlib.resources`` wherever mlscan is installed.
"""

from __future__ import annotations

from pathlib import Path


def data_dir() -> Path:
    """The directory holding the shipped data files."""
    return Path(__file__).resolve().parent
