"""Judging imported globals: denylist first, then allowlist, everything else unreviewed.

Lists live in ``signatures/pickle/*.toml``. Matching is on dotted paths: an entry ``os`` covers
``os.system`` and ``os.path.join``; a dotted name (protocol 4 ``find_class`` walks attributes)
is also checked from every name component, so ``pathlib`` + ``os.system`` matches ``os``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scanner.core.finding import Severity
from scanner.core.tomlcompat import load_toml

# Python 2 names that CPython's unpickler maps to Python 3 modules (fix_imports).
MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg", "cPickle": "pickle",
                  "exceptions": "builtins", "commands": "subprocess", "urllib2": "urllib.request",
                  "httplib": "http.client", "_winreg": "winreg", "Queue": "queue",
                  "SocketServer": "socketserver", "cStringIO": "io", "StringIO": "io"}


@dataclass(frozen=True)
class Verdict:
    kind: str            # "dangerous" | "dunder" | "allowed" | "unreviewed"
    path: str            # the dotted path judged
    severity: Severity
    why: str = ""
    matched: str = ""
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Entry:
    match: str
    why: str
    severity: Severity
    references: tuple[str, ...]


def _covers(entry: str, path: str) -> bool:
    return path == entry or path.startswith(entry + ".")


class GlobalPolicy:
    def __init__(self, deny: list[_Entry], allow_exact: frozenset[str], allow_prefix: tuple[str, ...]):
        self._deny = deny
        self._allow_exact = allow_exact
        self._allow_prefix = allow_prefix
        # Verdicts are frozen and depend only on (module, name): real pickles repeat a few
        # globals thousands of times, and each fresh judgment walks the whole denylist.
        self._verdicts: dict[tuple[str, str], Verdict] = {}

    def _denied(self, path: str) -> _Entry | None:
        best: _Entry | None = None
        for entry in self._deny:
            if _covers(entry.match, path) and (best is None or len(entry.match) > len(best.match)):
                best = entry
        return best

    def judge(self, module: str, name: str) -> Verdict:
        key = (module, name)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) > 100_000:  # bounded: a crafted pickle can name many globals
                self._verdicts.clear()
            verdict = self._verdicts[key] = self._judge(module, name)
        return verdict

    def _judge(self, module: str, name: str) -> Verdict:
        module = MODULE_ALIASES.get(module, module)
        full = f"{module}.{name}"
        parts = name.split(".")
        # the full path, then for a dotted name every tail of it (getattr walks from the module)
        candidates = [full] + ([".".join(parts[i:]) for i in range(len(parts) - 1)] if len(parts) > 1 else [])
        for path in candidates:
            entry = self._denied(path)
            if entry is not None:
                return Verdict("dangerous", full, entry.severity, entry.why, entry.match, entry.references)
        # dunder *attributes* (numpy.__builtins__, f.__globals__); a dunder top-level module
        # (__torch__, TorchScript's class namespace) is just a name that is not importable
        walked = parts + module.split(".")[1:]
        if any(p.startswith("__") and p.endswith("__") for p in walked):
            return Verdict("dunder", full, Severity.CRITICAL,
                           "reaches a dunder attribute (e.g. __builtins__, __globals__), which "
                           "exposes eval/exec and the import machinery")
        if full in self._allow_exact or any(full.startswith(p) for p in self._allow_prefix):
            return Verdict("allowed", full, Severity.INFO)
        return Verdict("unreviewed", full, Severity.MEDIUM)


@lru_cache(maxsize=1)
def load_policy() -> GlobalPolicy:
    from signatures import data_dir

    base = data_dir() / "pickle"
    deny: list[_Entry] = []
    for group in load_toml(base / "denylist.toml")["group"]:
        severity = Severity.parse(group["severity"])
        refs = tuple(group.get("references", []))
        deny.extend(_Entry(m, group["why"], severity, refs) for m in group["match"])
    exact: set[str] = set()
    prefix: list[str] = []
    for group in load_toml(base / "allowlist.toml")["group"]:
        exact.update(group.get("exact", []))
        prefix.extend(group.get("prefix", []))
    return GlobalPolicy(deny, frozenset(exact), tuple(prefix))
