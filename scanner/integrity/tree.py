"""Enumerating a model tree for verification: files, symlinks, and what the signer ignored.

Symlinks are never followed while walking. A symlink is a finding unless the manifest allows
symlinks and it stays inside the model root; even then it is hashed as its target's content.
Ignore paths are exact relative paths (a directory covers everything under it), as in OMS.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tree:
    root: Path
    single_file: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    symlinks: dict[str, tuple[str, bool]] = field(default_factory=dict)  # rel -> (target, inside)
    ignored: list[str] = field(default_factory=list)
    specials: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def is_ignored(rel: str, ignore_paths: frozenset[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in ignore_paths)


def enumerate_tree(root: Path, ignore_paths: frozenset[str] = frozenset(),
                   exclude: frozenset[Path] = frozenset()) -> Tree:
    """Every entry under ``root`` (or ``root`` itself when it is a file), relative POSIX names.
    ``exclude`` holds absolute paths that are not part of the model (the manifest itself)."""
    excluded = {os.path.abspath(p) for p in exclude}
    tree = Tree(root)
    if root.is_file():
        tree.single_file = True
        tree.files[root.name] = root
        return tree
    base = root.resolve()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            tree.errors.append((_rel(Path(directory), root) or ".", exc.strerror or str(exc)))
            continue
        for entry in entries:
            path = Path(entry.path)
            rel = _rel(path, root)
            if os.path.abspath(path) in excluded:
                continue
            if is_ignored(rel, ignore_paths):
                tree.ignored.append(rel)
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                tree.errors.append((rel, exc.strerror or str(exc)))
                continue
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                tree.symlinks[rel] = (target, Path(target).is_relative_to(base))
            elif stat.S_ISDIR(mode):
                stack.append(path)
            elif stat.S_ISREG(mode):
                tree.files[rel] = path
            else:
                tree.specials.append(rel)
    return tree


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix() if path != root else ""
