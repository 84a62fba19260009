"""Hugging Face Hub references: ``hf://[datasets/|spaces/]owner/repo[@revision][/path]``.

Resolution goes through the Hub HTTP API only (no huggingface_hub dependency):

1. ``GET /api/{models|datasets|spaces}/{repo}/revision/{revision}`` pins the revision (a branch,
   tag or ``refs/pr/N`` moves; a commit does not) to its 40-hex ``sha`` *before* any file is
   fetched, so every file comes from one commit, and the output can tell the user what to pin.
2. ``GET .../tree/{commit}[/{dir}]?recursive=true`` (paginated with ``Link: rel="next"``) is the
   manifest: ``lfs.oid`` is the sha256 of an LFS file's content, ``oid`` the git blob sha1 of a
   small file, with sizes. huggingface_hub checks only sizes on download; we check digests.
3. Files download from ``/{repo}/resolve/{commit}/{path}`` (LFS files redirect to a CDN).

``HF_ENDPOINT`` replaces ``https://huggingface.co`` (mirrors, proxies, tests). ``HF_TOKEN`` is
sent as a bearer token to the endpoint's origin only, never to the CDN it redirects to, and is
never printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from scanner.integrity.interface import Digest
from scanner.sources.http import HttpClient, HttpStatusError, redact
from scanner.sources.interface import (
    Expectation,
    FetchError,
    ReferenceError,
    Rejected,
    RemoteFile,
    Resolved,
    Selection,
    Source,
)
from scanner.sources.quarantine import unsafe_path_reason

DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_PAGES = 10_000
MAX_ENTRIES = 1_000_000
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REVISION = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
_SPECIAL_REVISION = re.compile(r"^(refs/pr/\d+|refs/convert/[A-Za-z0-9._-]+)(?=/|$)")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# repo type -> (API collection, URL prefix of resolve/ links)
_TYPES = {"model": ("models", ""), "dataset": ("datasets", "datasets/"), "space": ("spaces", "spaces/")}


@dataclass(frozen=True)
class HfReference:
    repo_type: str          # "model" | "dataset" | "space"
    repo_id: str            # owner/name
    revision: str = "main"
    path: str = ""          # a file or directory in the repo; "" for all of it

    @classmethod
    def parse(cls, reference: str) -> HfReference:
        if not reference.startswith("hf://"):
            raise ReferenceError(f"{reference!r}: not an hf:// reference")
        rest = reference[len("hf://"):]
        repo_type = "model"
        for kind, (collection, _) in _TYPES.items():
            if rest.startswith(collection + "/"):
                repo_type, rest = kind, rest[len(collection) + 1:]
                break
        owner, _, rest = rest.partition("/")
        match = re.match(r"^([^@/]*)(.*)$", rest)
        assert match is not None
        name, rest = match.groups()
        revision, path = "main", ""
        if rest.startswith("@"):
            rest = rest[1:]
            special = _SPECIAL_REVISION.match(rest)
            if special:
                revision, rest = special.group(1), rest[special.end():]
            else:
                revision, _, remainder = rest.partition("/")
                rest = "/" + remainder if remainder else ""
                revision = unquote(revision)  # refs%2Fpr%2F1, as the Hub writes it
        if rest.startswith("/"):
            path = rest[1:].rstrip("/")
        elif rest:
            raise ReferenceError(f"{reference!r}: cannot parse; expected "
                                 "hf://owner/repo[@revision][/path]")
        usage = "expected hf://owner/repo[@revision][/path] (datasets: hf://datasets/owner/repo)"
        if not _NAME.match(owner) or not _NAME.match(name) or ".." in owner + name:
            raise ReferenceError(f"{reference!r}: {owner + '/' + name!r} is not a repository id; {usage}")
        if not revision or not _REVISION.match(revision) or ".." in revision:
            raise ReferenceError(f"{reference!r}: {revision!r} is not a revision (branch, tag, "
                                 "refs/pr/N or 40-hex commit)")
        if path and unsafe_path_reason(path):
            raise ReferenceError(f"{reference!r}: unsafe path {path!r} ({unsafe_path_reason(path)})")
        return cls(repo_type, f"{owner}/{name}", revision, path)

    def pinned(self, commit: str) -> str:
        kind = "" if self.repo_type == "model" else _TYPES[self.repo_type][0] + "/"
        return f"hf://{kind}{self.repo_id}@{commit}" + (f"/{self.path}" if self.path else "")


def endpoint_from_env() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


class HfSource(Source):
    name: ClassVar[str] = "hf"

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.ref = HfReference.parse(reference)
        self.endpoint = endpoint_from_env()

    @classmethod
    def handles(cls, reference: str) -> bool:
        return reference.startswith("hf://")

    @property
    def _api(self) -> str:
        return f"{self.endpoint}/api/{_TYPES[self.ref.repo_type][0]}/{self.ref.repo_id}"

    def resolve(self, client: HttpClient, selection: Selection) -> Resolved:
        if urlsplit(self.endpoint).scheme not in ("http", "https"):
            raise ReferenceError(f"HF_ENDPOINT={self.endpoint!r}: must be an http(s) URL")
        token = (os.environ.get("HF_TOKEN") or "").strip()
        if token and urlsplit(self.endpoint).scheme != "https":
            raise ReferenceError(f"HF_TOKEN is set but HF_ENDPOINT {redact(self.endpoint)} is plain "
                                 "http: refusing to send the token in clear text. Use an https "
                                 "endpoint, or unset HF_TOKEN for a public repository.")
        if token:
            client.add_bearer_token(self.endpoint, token)
        commit = self._pin(client, bool(token))
        files: list[RemoteFile] = []
        rejected: list[Rejected] = []
        for item in self._listing(client, commit, bool(token)):
            entry = self._entry(item, commit)
            if isinstance(entry, Rejected):
                rejected.append(entry)
            elif entry is not None and selection.wants(entry.path):
                files.append(entry)
        if not files and not rejected:
            what = f"under {self.ref.path!r} " if self.ref.path else ""
            raise FetchError(f"{self.reference}: no file {what}at commit {commit} matches the "
                             "selection; check the path and --include/--exclude patterns")
        files.sort(key=lambda f: f.path)
        return Resolved(self.reference, "hf", tuple(files), commit, self.ref.pinned(commit),
                        tuple(rejected), {"repo": self.ref.repo_id, "repo_type": self.ref.repo_type,
                                          "revision": self.ref.revision,
                                          "endpoint": redact(self.endpoint)})

    def _explain(self, exc: HttpStatusError, token: bool, what: str) -> FetchError:
        repo = f"{self.ref.repo_type} {self.ref.repo_id}"
        if exc.status in (401, 403):
            hint = ("HF_TOKEN was sent: check that it is valid and grants read access to this repo"
                    if token else "if it exists, set HF_TOKEN to a token with read access (for a "
                    "gated model, accept its terms on the Hub first)")
            return FetchError(f"{self.reference}: {exc.status} from {redact(exc.url)}: {repo} does "
                              f"not exist, or it is private or gated; {hint}.")
        if exc.status == 404:
            return FetchError(f"{self.reference}: 404 from {redact(exc.url)}: {what} not found. "
                              "Check the repository id, revision and path (datasets need "
                              "hf://datasets/owner/repo).")
        return exc

    def _pin(self, client: HttpClient, token: bool) -> str:
        """The 40-hex commit the revision names right now."""
        url = f"{self._api}/revision/{quote(self.ref.revision, safe='')}"
        try:
            info, _, _ = client.get_json(url)
        except HttpStatusError as exc:
            raise self._explain(exc, token, f"revision {self.ref.revision!r} of {self.ref.repo_id}") from None
        sha = info.get("sha") if isinstance(info, dict) else None
        if not isinstance(sha, str) or not COMMIT.match(sha):
            raise FetchError(f"{redact(url)}: the answer has no 40-hex 'sha' (got {str(sha)[:60]!r}); "
                             "is HF_ENDPOINT a Hugging Face Hub API?")
        if COMMIT.match(self.ref.revision) and sha != self.ref.revision:
            raise FetchError(f"{self.reference}: the Hub resolved commit {self.ref.revision} to "
                             f"{sha}; refusing a mirror that rewrites commits")
        return sha

    def _listing(self, client: HttpClient, commit: str, token: bool) -> Iterator[Any]:
        path = self.ref.path
        if path:
            # A path may be a file or a directory: its parent's listing says which.
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            kind = None
            for item in self._pages(client, commit, parent, recursive=False, token=token):
                if isinstance(item, dict) and item.get("path") == path:
                    kind = item.get("type")
                    if kind == "file":
                        yield item
            if kind == "directory":
                yield from self._pages(client, commit, path, recursive=True, token=token)
            elif kind is None:
                raise FetchError(f"{self.reference}: {path!r} does not exist at commit {commit}")
            return
        yield from self._pages(client, commit, "", recursive=True, token=token)

    def _pages(self, client: HttpClient, commit: str, directory: str, *, recursive: bool,
               token: bool) -> Iterator[Any]:
        suffix = f"/{quote(directory)}" if directory else ""
        url: str | None = f"{self._api}/tree/{commit}{suffix}" + ("?recursive=true" if recursive else "")
        origin = urlsplit(self.endpoint)[:2]
        count = 0
        for _page in range(MAX_PAGES):
            if url is None:
                return
            try:
                data, _, next_url = client.get_json(url)
            except HttpStatusError as exc:
                raise self._explain(exc, token, f"the file listing at commit {commit}") from None
            if not isinstance(data, list):
                raise FetchError(f"{redact(url)}: a tree listing must be a JSON list")
            count += len(data)
            if count > MAX_ENTRIES:
                raise FetchError(f"{self.reference}: more than {MAX_ENTRIES} files; select a path")
            yield from data
            if next_url is not None and urlsplit(next_url)[:2] != origin:
                raise FetchError(f"{redact(url)}: the next page link points to another origin "
                                 f"({redact(next_url)}); refusing to follow it")
            url = next_url
        raise FetchError(f"{self.reference}: the listing has more than {MAX_PAGES} pages")

    def _entry(self, item: Any, commit: str) -> RemoteFile | Rejected | None:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise FetchError(f"{self.reference}: unexpected tree entry {str(item)[:100]!r}")
        if item.get("type") != "file":
            return None
        path: str = item["path"]
        reason = unsafe_path_reason(path)
        if reason:
            return Rejected(path, reason)
        size = item.get("size") if _is_size(item.get("size")) else None
        where = f"Hugging Face tree listing at commit {commit[:12]}"
        expected: list[Expectation] = []
        lfs = item.get("lfs")
        is_lfs = isinstance(lfs, dict)
        if isinstance(lfs, dict) and isinstance(lfs.get("oid"), str) and _SHA256.match(lfs["oid"].lower()):
            lfs_size = lfs.get("size") if _is_size(lfs.get("size")) else size
            size = lfs_size
            expected.append(Expectation(f"{where} (LFS sha256)", Digest("sha256", lfs["oid"].lower()), lfs_size))
        elif not is_lfs and isinstance(item.get("oid"), str) and COMMIT.match(item["oid"].lower()):
            expected.append(Expectation(f"{where} (git blob sha1)", Digest("git-sha1", item["oid"].lower()), size))
        elif size is not None:
            expected.append(Expectation(f"{where} (size only)", None, size))
        prefix = _TYPES[self.ref.repo_type][1]
        url = f"{self.endpoint}/{prefix}{self.ref.repo_id}/resolve/{commit}/{quote(path)}"
        return RemoteFile(url, path, tuple(expected), size, commit, is_lfs)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
