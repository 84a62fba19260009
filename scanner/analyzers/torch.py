"""PyTorch container specifics: TorchScript source checks and archive-level structure rules.

TorchScript ``code/**/*.py`` members arrive as text artifacts; their calls are matched against
``signatures/torchscript.toml`` (never compiled or run). Archive structure (TorchScript under a
checkpoint name, torch.package, legacy tar) is judged from member names by the zip and tar
analyzers through :func:`structure_findings`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from scanner.analyzers.interface import Analyzer, Artifact, ScanContext
from scanner.core.finding import Finding
from scanner.core.tomlcompat import load_toml
from scanner.formats.interface import Format

CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt")
LEGACY_TAR_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})
MAX_SOURCE_BYTES = 8 << 20


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[re.Pattern[str], str, str], ...]:
    from signatures import data_dir

    data = load_toml(data_dir() / "torchscript.toml")
    return tuple((re.compile(p["regex"]), p["rule"], p["why"]) for p in data["pattern"])


def is_torchscript_source(artifact: Artifact) -> bool:
    member = artifact.location.members[-1] if artifact.location.members else ""
    return bool(re.search(r"(^|/)code/.+\.py$", member))


class TorchScriptSourceAnalyzer(Analyzer):
    name = "torchscript"
    formats = frozenset({Format.TEXT})

    def analyze(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding | Artifact]:
        if not is_torchscript_source(artifact):
            return
        size = min(artifact.blob.size, MAX_SOURCE_BYTES)
        source = artifact.blob.read_at(0, size).decode("utf-8", errors="replace")
        for number, line in enumerate(source.splitlines(), 1):
            for pattern, rule_id, why in _patterns():
                if pattern.search(line):
                    yield ctx.finding(rule_id, artifact.location.at(node=f"line {number}"),
                                      f"{line.strip()[:200]}\nwhy: {why}")


def structure_findings(artifact: Artifact, ctx: ScanContext, names: Iterable[str],
                       container: str) -> Iterator[Finding]:
    names = list(names)
    checkpoint_name = artifact.name.lower().endswith(CHECKPOINT_EXTENSIONS)
    if container == "zip":
        if any(n.endswith(".data/extern_modules") for n in names):
            yield ctx.finding("MLS-TCH-013", artifact.location,
                              "contains .data/extern_modules: a torch.package archive whose bundled "
                              f"modules ({sum(n.endswith('.py') for n in names)} .py files) run on import")
        torchscript = any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)
        if torchscript and checkpoint_name:
            yield ctx.finding("MLS-TCH-010", artifact.location,
                              f"'{artifact.name}' is a TorchScript archive (constants.pkl and code/)")
    elif container == "tar" and checkpoint_name and LEGACY_TAR_MEMBERS <= set(names):
        yield ctx.finding("MLS-TCH-010", artifact.location,
                          f"'{artifact.name}' is a legacy tar checkpoint (sys_info, pickle, storages, tensors)")
