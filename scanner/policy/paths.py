"""Paths relative to the scan root, and the path globs that policy matches against them.

Reports show a file as the user named it: relative to a scanned directory, or the file argument
as typed. Fingerprints, SARIF URIs, ignore globs and suppressions need a name that does not
change when the same tree is scanned from another working directory, so they use the path
relative to the *scan root*: the directory target that holds the file, or the parent directory
of a file target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Root:
    """One scan target and the directory its artifacts are relative to."""

    target: str       # os.path.normpath of the target as given (how the engine names its files)
    directory: str    # absolute directory the root-relative paths start from
    is_file: bool


@dataclass(frozen=True)
class RootPath:
    """A report path resolved against the scan roots."""

    root: int | None  # index into ScanRoots.roots, None when the path is outside every root
    relative: str     # '/'-separated path below the root (the file name when root is None)


class ScanRoots:
    """Maps the engine's display paths back to (scan root, root-relative path).

    Mirrors how the engine names files: with one directory target, paths are relative to it;
    with several targets, each path starts with its target as given; a file target is named as
    given. Absolute paths that are not engine names (the configuration file a policy finding
    points at) are matched against the root directories.
    """

    def __init__(self, targets: Sequence[str]) -> None:
        self.prefixed = len(targets) > 1
        roots: list[Root] = []
        for target in targets:
            norm = os.path.normpath(str(target))
            absolute = os.path.abspath(norm)
            is_file = not os.path.isdir(absolute)
            roots.append(Root(norm, os.path.dirname(absolute) if is_file else absolute, is_file))
        self.roots = tuple(roots)

    def resolve(self, display: str) -> RootPath:
        absolute = os.path.isabs(display)
        for index, root in enumerate(self.roots):
            if root.is_file:
                if display == root.target:
                    return RootPath(index, _slashes(os.path.basename(root.target)))
            elif not self.prefixed:
                if not absolute:
                    return RootPath(index, _slashes(display))
            elif display == root.target:
                return RootPath(index, ".")
            elif root.target == "." and not absolute:
                return RootPath(index, _slashes(display))
            elif display.startswith(root.target.rstrip(os.sep) + os.sep):
                return RootPath(index, _slashes(os.path.relpath(display, root.target)))
        if absolute:
            for index, root in enumerate(self.roots):
                if _is_within(display, root.directory):
                    return RootPath(index, _slashes(os.path.relpath(display, root.directory)))
        return RootPath(None, _slashes(os.path.basename(display) or display))

    def relative(self, display: str) -> str:
        return self.resolve(display).relative

    def covers(self, directory: str) -> bool:
        """True when ``directory`` is at or below one of the scanned directory targets."""
        return any(not r.is_file and _is_within(directory, r.directory) for r in self.roots)


def _slashes(path: str) -> str:
    return path.replace(os.sep, "/")


def _is_within(path: str, directory: str) -> bool:
    path, directory = os.path.abspath(path), os.path.abspath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a path glob: ``**`` crosses directories, ``*`` and ``?`` do not."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
                i += 1
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_matches(pattern: str, relative: str, members: Sequence[str] = ()) -> bool:
    """Does a policy path glob select this artifact?

    ``pattern`` is matched against the root-relative path, against each of its parent
    directories (so ``vendor`` or ``vendor/`` selects everything below it), against the member
    chain written ``file!member!member``, and, when it has no ``/``, against the file name. A
    bare ``*.pkl`` does not select pickles *inside* archives: hiding a payload in ``model.pt``
    should take a pattern that names the container (``model.pt!**``).
    """
    pattern = pattern.strip().replace("\\", "/").removeprefix("./")
    if not pattern:
        return False
    if pattern.endswith("/"):
        pattern = pattern.rstrip("/")
    regex = _glob_regex(pattern)
    candidates = [relative]
    parts = relative.split("/")
    candidates.extend("/".join(parts[:n]) for n in range(1, len(parts)))
    for depth in range(1, len(members) + 1):
        candidates.append("!".join((relative, *members[:depth])))
    if "/" not in pattern:
        candidates.append(parts[-1])
    return any(regex.fullmatch(candidate) for candidate in candidates)
