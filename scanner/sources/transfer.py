"""Transfer mechanics behind :class:`~scanner.sources.http.HttpClient`: the retry budget
(exponential backoff, ``Retry-After``, progress resets it), and the state of one file's body
across attempts (Range resume, restart, size limits, hashing as it writes).

Kept apart from the client so each can be read on its own; nothing here imports ``requests``.
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scanner.integrity.hashing import MultiHasher
from scanner.sources.interface import FetchError, SizeLimitError

if TYPE_CHECKING:
    from scanner.sources.http import HttpOptions

CHUNK = 1 << 20
# Attempts that made progress do not use up the retry budget; this caps them all the same, so
# a server that drops the connection after every few bytes cannot keep us busy forever.
MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class Download:
    """What a download produced on disk."""

    url: str                        # redacted final URL (after redirects)
    length: int
    digests: dict[str, str]
    complete: bool = True           # False: stopped because the body exceeded expected_size
    announced: int | None = None    # size the server announced for the whole file
    insecure_hosts: tuple[str, ...] = ()
    resumed: int = 0                # continuations with Range
    restarted: int = 0              # continuations the server refused (started over)


def redact(url: str) -> str:
    """``scheme://host[:port]/path`` without credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RetryableStatus(Exception):
    def __init__(self, url: str, status: int, reason: str, retry_after: float | None) -> None:
        super().__init__(f"{status} {reason}")
        self.url, self.status, self.reason, self.retry_after = url, status, reason, retry_after


class Truncated(Exception):
    def __init__(self, got: int, total: int) -> None:
        super().__init__(f"the body ended after {got} of {total} bytes")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Retries:
    """The retry budget of one operation: backoff, Retry-After, and the final message."""

    def __init__(self, options: HttpOptions, sleep: Callable[[float], None], url: str) -> None:
        self.options, self.sleep, self.url = options, sleep, url
        self.failures = 0
        self.attempts = 0
        self.received = ""

    def failed(self, exc: BaseException, progressed: bool, received: str = "") -> None:
        """Sleep before the next attempt, or raise the FetchError that ends the operation.
        ``received`` says how much of the body had arrived, for the message."""
        self.received = received
        options = self.options
        self.attempts += 1
        self.failures = 1 if progressed else self.failures + 1
        retry_after = exc.retry_after if isinstance(exc, RetryableStatus) else None
        if retry_after is not None and retry_after > options.retry_after_max:
            raise FetchError(f"{self._describe(exc)}; the server asks to retry after "
                             f"{retry_after:.0f} s (more than {options.retry_after_max:.0f} s). "
                             "Try again later.") from None
        if self.failures > options.retries or self.attempts >= MAX_ATTEMPTS:
            tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
            raise FetchError(f"{self._describe(exc)} ({tries}). {self._advice(exc)}") from None
        delay = min(options.backoff * 2 ** (self.failures - 1), options.backoff_max)
        self.sleep(max(delay, retry_after or 0.0))

    def _describe(self, exc: BaseException) -> str:
        host = urlsplit(self.url).netloc.rpartition("@")[2]
        options = self.options
        if isinstance(exc, RetryableStatus):
            return f"{redact(exc.url)}: the server answered {exc.status} {exc.reason}"
        if isinstance(exc, FetchError):
            return str(exc).rstrip(".")
        if isinstance(exc, Truncated):
            return f"{redact(self.url)}: the connection broke mid-download ({exc})"
        text = str(exc)
        name = type(exc).__name__
        if name == "ConnectTimeout":
            return f"{host}: could not connect within {options.connect_timeout:g} s"
        if "timed out" in text.lower() or name == "ReadTimeout":
            return f"{redact(self.url)}: timed out after {options.read_timeout:g} s waiting for the server"
        if name in ("ChunkedEncodingError", "ProtocolError"):
            return f"{redact(self.url)}: the connection broke mid-download ({self.received or 'body cut short'})"
        return f"{host}: connection failed ({short(text)})"

    @staticmethod
    def _advice(exc: BaseException) -> str:
        if isinstance(exc, RetryableStatus) and exc.status == 429:
            return "The server is rate-limiting: wait and retry (on the Hugging Face Hub, set HF_TOKEN)."
        if isinstance(exc, RetryableStatus):
            return "The server is failing: retry later."
        return "Check the network (and proxy settings), then retry; raise --timeout/--retries for a slow link."


def short(text: str, limit: int = 160) -> str:
    """One line, printable (server-supplied text reaches the terminal), at most ``limit``."""
    text = "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Body:
    """The state of one file's download across attempts (resume, restart, limits)."""

    max_size: int | None
    expected_size: int | None
    url: str
    written: int = 0
    total: int | None = None
    validator: str | None = None
    encoded: bool = False
    hasher: MultiHasher | None = None
    resumed: int = 0
    restarted: int = 0
    insecure: set[str] = field(default_factory=set)

    def begin(self, response: Any, out: Any) -> bool:
        """Position the file for this response's body; False when the response is unusable
        (a range that does not start where we are) and the next attempt starts over."""
        start, total = span(response)
        if start != self.written:
            if not self.written:
                raise FetchError(f"{redact(self.url)}: the server sent a byte range (from offset "
                                 f"{start}) nobody asked for; the download cannot be trusted")
            self.restart(out)
            if start != 0:
                return False  # an unusable range: ask again for the whole file
        elif self.written:
            self.resumed += 1
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        self.encoded = encoding not in ("", "identity")
        # Content-Length of an encoded body is not the file's length; urllib3 still checks it.
        self.total = None if self.encoded else total
        etag = response.headers.get("ETag", "")
        self.validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
        if self.total is not None and self.max_size is not None and self.total > self.max_size:
            raise SizeLimitError(f"{redact(self.url)}: the server announces {self.total} bytes, more "
                                 f"than --max-size {self.max_size}; refused before downloading")
        return True

    def ensure_hasher(self, algorithms: list[str], size_hint: int | None) -> None:
        """A hasher for a fresh body (after a restart the old one describes other bytes)."""
        if self.hasher is None:
            self.hasher = MultiHasher(algorithms, size_hint)

    def restart(self, out: Any) -> None:
        out.seek(0)
        out.truncate()
        self.written = 0
        self.hasher = None
        self.restarted += 1

    def oversize(self) -> bool:
        return self.total is not None and self.expected_size is not None and self.total > self.expected_size

    def write(self, out: Any, chunk: bytes) -> bool:
        if not chunk:
            return True
        if self.max_size is not None and self.written + len(chunk) > self.max_size:
            raise SizeLimitError(f"{redact(self.url)}: more than --max-size {self.max_size} bytes "
                                 "arrived; download stopped")
        if self.expected_size is not None and self.written + len(chunk) > self.expected_size:
            return False
        out.write(chunk)
        assert self.hasher is not None
        self.hasher.update(chunk)
        self.written += len(chunk)
        return True

    def finish(self, out: Any) -> None:
        if self.total is not None and self.written < self.total:
            raise Truncated(self.written, self.total)
        out.flush()
        os.fsync(out.fileno())

    def result(self, final: str, complete: bool) -> Download:
        assert self.hasher is not None
        return Download(redact(final), self.written, self.hasher.hexdigests(), complete,
                        self.total, tuple(sorted(self.insecure)), self.resumed, self.restarted)


def chunks(response: Any, encoded: bool) -> Iterator[bytes]:
    """The body as it arrives. Unencoded bodies are read with ``read1`` so that bytes received
    before a connection breaks are kept (and the download resumes after them); a full-size
    ``read`` would discard a partial chunk with the error."""
    if encoded:
        yield from response.iter_content(CHUNK)
        return
    while True:
        data = response.raw.read1(CHUNK, decode_content=False)
        if not data:
            return
        yield data


def span(response: Any) -> tuple[int, int | None]:
    """(offset of this body in the file, full file length or None) from the headers."""
    length = response.headers.get("Content-Length", "")
    content_length = int(length) if length.strip().isdigit() else None
    if response.status_code != 206:
        return 0, content_length
    value = response.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    span, _, whole = rest.partition("/")
    first, _, _last = span.partition("-")
    if unit.strip().lower() != "bytes" or not first.strip().isdigit():
        return -1, None  # unusable: the caller starts over
    start = int(first)
    if whole.strip().isdigit():
        return start, int(whole)
    return start, None if content_length is None else start + content_length
