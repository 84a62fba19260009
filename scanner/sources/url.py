"""Plain ``https://`` (and, when allowed, ``http://``) URLs: one file, named after the URL path.

The only expectation a bare URL carries is the torch.hub convention: ``resnet18-f37072fd.pth``
claims that the file's sha256 starts with ``f37072fd``. That is a corruption check, not a tamper
check (matching 8 hex digits takes about 4 billion tries), so it is graded PARTIAL and reported;
an empty or short prefix (``x-.pth``, which torch.hub accepts) is no expectation at all.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from scanner.integrity.interface import PREFIX_ALGORITHM, Digest
from scanner.sources.http import HttpClient
from scanner.sources.interface import (
    Expectation,
    ReferenceError,
    Rejected,
    RemoteFile,
    Resolved,
    Selection,
    Source,
)
from scanner.sources.quarantine import unsafe_path_reason

# torch.hub's HASH_REGEX is r"-([a-f0-9]*)\." (which matches an empty prefix); we need >= 8 hex.
HUB_PREFIX = re.compile(r"-([a-f0-9]{8,64})\.")


def name_prefix(name: str) -> Digest | None:
    """The sha256 prefix a torch.hub-style file name claims, if any. All-decimal runs
    (``model-20240101.pt``) are dates or versions far more often than hashes, so they do not
    count: a false "mismatch" would block a legitimate download."""
    for match in HUB_PREFIX.finditer(name):
        if not match.group(1).isdigit():
            return Digest(PREFIX_ALGORITHM, match.group(1))
    return None


class UrlSource(Source):
    name: ClassVar[str] = "url"

    def __init__(self, reference: str) -> None:
        self.reference = reference

    @classmethod
    def handles(cls, reference: str) -> bool:
        return reference.lower().startswith(("https://", "http://"))

    def resolve(self, client: HttpClient, selection: Selection) -> Resolved:
        parts = urlsplit(self.reference)
        if not parts.hostname:
            raise ReferenceError(f"{self.reference!r}: no host in the URL")
        if parts.username or parts.password:
            raise ReferenceError("credentials in the URL are not accepted (they would end up in "
                                 "logs and reports); use a token-protected mirror instead")
        raw_name = parts.path.rsplit("/", 1)[-1]
        name = unquote(raw_name)
        if not raw_name:
            raise ReferenceError(f"{self.reference!r}: the URL path ends with '/', so there is no "
                                 "file name to save it under; give the URL of a file")
        reason = unsafe_path_reason(name) or ("'/' in the decoded file name" if "/" in name else None)
        if reason:
            return Resolved(self.reference, "url", (), rejected=(Rejected(name, reason),))
        if selection.include or selection.exclude:
            raise ReferenceError("--include/--exclude select files of a repository; a URL names "
                                 "one file")
        expected = []
        prefix = name_prefix(name)
        if prefix is not None:
            expected.append(Expectation("the sha256 prefix in the file name (torch.hub convention)",
                                        prefix))
        return Resolved(self.reference, "url", (RemoteFile(self.reference, name, tuple(expected)),))
