"""The sources data model: what a remote reference resolves to, and the Source contract.

A source turns a reference the user typed into a list of :class:`RemoteFile` objects, each with
an immutable URL, the relative path it will have under ``--dest``, and every expected digest
and size the source itself can vouch for (the Hugging Face tree listing, a hash prefix in a
file name). The fetcher adds expectations from the command line, a manifest and the registry,
downloads, and checks them all. Everything here is frozen: a resolution is a snapshot (for
Hugging Face, of one commit), never updated while files download.

Credentials never appear in these objects: the HTTP client holds them, so a traceback or a
``repr`` of a file list cannot leak a token.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from scanner.integrity.interface import Digest

if TYPE_CHECKING:
    from scanner.sources.http import HttpClient


class FetchError(Exception):
    """The bytes could not be obtained (network, HTTP status, TLS, limits, bad reference).

    The message is one line saying what failed, where, and what to do; the CLI prints it and
    exits 2. Never a verdict about the content: nothing was downloaded completely.
    """


class ReferenceError(FetchError):
    """The reference itself is unusable (unknown scheme, malformed ``hf://``)."""


class HttpStatusError(FetchError):
    """A final HTTP error status (after retries for the retryable ones)."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class SizeLimitError(FetchError):
    """The body is larger than ``max_size``: refused before (or while) it is read."""


class TransportError(FetchError):
    """Refused by transport policy (plain http, downgrade, too many redirects) or TLS failure."""


@dataclass(frozen=True)
class Expectation:
    """One thing a trusted-enough party says about a file: a digest, a size, or both.

    ``source`` names the party for messages ("--sha256", "manifest SHA256SUMS", "Hugging Face
    tree listing (LFS sha256) at commit 1a2b...", "file-name prefix").
    """

    source: str
    digest: Digest | None = None
    size: int | None = None


@dataclass(frozen=True)
class RemoteFile:
    """One file to download. ``path`` is relative and POSIX (validated before it is used)."""

    url: str
    path: str
    expected: tuple[Expectation, ...] = ()
    size: int | None = None          # best known size (for git-sha1 and --max-size up front)
    commit: str | None = None        # the pinned commit it comes from, when there is one
    lfs: bool = False                # content is stored in LFS: a pointer file is never right

    def with_expectations(self, extra: Sequence[Expectation]) -> RemoteFile:
        return RemoteFile(self.url, self.path, (*self.expected, *extra), self.size, self.commit,
                          self.lfs)


@dataclass(frozen=True)
class Rejected:
    """A file the source listed but that must not be downloaded (an unsafe path)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Resolved:
    """What a reference pins down: the files of one immutable snapshot."""

    reference: str
    kind: str                               # "url" | "hf"
    files: tuple[RemoteFile, ...]
    commit: str | None = None               # Hugging Face: the 40-hex commit everything is from
    pinned: str | None = None               # the reference rewritten with the commit, to reuse
    rejected: tuple[Rejected, ...] = ()
    details: dict[str, str] = field(default_factory=dict)  # repo, revision, endpoint...


@dataclass(frozen=True)
class Selection:
    """Which files of a multi-file source to fetch: ``fnmatch`` patterns on the relative path
    (``*`` crosses ``/``, as in huggingface_hub's allow_patterns)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, path: str) -> bool:
        def hit(pattern: str) -> bool:
            # "sub/" means everything below sub/, as huggingface_hub reads it
            return fnmatch.fnmatchcase(path, pattern + "*" if pattern.endswith("/") else pattern)

        if self.include and not any(hit(p) for p in self.include):
            return False
        return not any(hit(p) for p in self.exclude)


class Source(ABC):
    """One kind of reference. ``resolve`` may talk to the network through ``client`` only."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def handles(cls, reference: str) -> bool:
        """Whether this source understands ``reference``."""

    @abstractmethod
    def resolve(self, client: HttpClient, selection: Selection) -> Resolved:
        """Pin the reference and list its files; raise :class:`FetchError` on failure."""


def is_remote(target: str) -> bool:
    """Whether a command-line target names a remote source rather than a local path."""
    return "://" in target


def source_for(reference: str) -> Source:
    """The source for ``reference``; an unknown scheme is a :class:`ReferenceError`."""
    from scanner.sources.hf import HfSource
    from scanner.sources.url import UrlSource

    for kind in (HfSource, UrlSource):
        if kind.handles(reference):
            return kind(reference)  # type: ignore[call-arg]
    scheme = reference.split("://", 1)[0]
    raise ReferenceError(f"{reference!r}: unsupported source scheme {scheme!r}; use https:// "
                         "(or http:// with --allow-insecure-http) or hf://owner/repo[@revision][/path]")
