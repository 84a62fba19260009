"""Evidence a reviewer can read: what the pickle would run, as Python.

fickling decompiles a pickle to a Python AST by symbolic interpretation (it parses, it never
unpickles). It fails on some valid inputs (protocol-0 FLOAT) and on every broken stream, so the
fallback is an opcode listing around the offending offset.
"""

from __future__ import annotations

import ast
import contextlib
import io
import pickletools
import warnings
from functools import lru_cache

#: pickles larger than this are not decompiled (fickling holds the whole program in memory)
MAX_DECOMPILE_BYTES = 2 << 20


@lru_cache(maxsize=16)
def decompile(data: bytes) -> str | None:
    """Python source equivalent of the pickle, or None when fickling cannot parse it."""
    if len(data) > MAX_DECOMPILE_BYTES:
        return None
    try:
        from fickling.fickle import Pickled

        # fickling prints warnings on odd input; keep stdout clean for --format json
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pickled = Pickled.load(data)
            return ast.unparse(pickled.ast)
    except Exception:  # noqa: BLE001 - any fickling failure means "use the opcode view"
        return None


def relevant_lines(source: str, needle: str, limit: int = 6) -> str:
    """The decompiled lines that mention ``needle`` (the imported name), plus their uses."""
    lines = source.splitlines()
    hits = [i for i, line in enumerate(lines) if needle in line]
    if not hits:
        return ""
    names: set[str] = set()
    for i in hits:
        left = lines[i].split("=", 1)[0].strip()
        if left.isidentifier():
            names.add(left)
    picked = [line for line in lines if needle in line or any(n in line for n in names)]
    return "\n".join(picked[:limit])


def opcode_view(data: bytes, around: int, base: int = 0, context: int = 6) -> str:
    """Opcodes near ``around`` (an absolute offset; ``data`` starts at ``base``)."""
    rows: list[tuple[int, str]] = []
    try:
        for op, arg, pos in pickletools.genops(io.BytesIO(data)):
            text = repr(arg) if arg is not None else ""
            rows.append((base + (pos or 0), f"{op.name} {text[:80]}".rstrip()))
    except Exception as exc:  # noqa: BLE001 - a broken stream: show what parsed, then the error
        rows.append((base + len(data), f"<parse stops: {exc}>"))
    index = min(range(len(rows)), key=lambda i: abs(rows[i][0] - around)) if rows else 0
    window = rows[max(0, index - context): index + 2]
    return "\n".join(f"  {pos:>8}: {text}" for pos, text in window)
