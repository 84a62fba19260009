"""The one HTTP client every source uses: safe defaults that cannot be switched off.

- TLS verification is always on. ``--ca-bundle`` *adds* a CA (a private mirror's) to the public
  ones; there is deliberately no option to disable verification.
- Plain ``http://`` is refused unless the caller allows it, and a redirect from https to http
  is refused even then: a downgrade mid-way is an attack, not a configuration.
- Redirects are followed by hand (``allow_redirects=False``) so every hop is checked, the hop
  count is bounded, and credentials go only to the origin they were given for (a token for the
  Hub never reaches its CDN).
- Connect and read timeouts; retries with exponential backoff on connection errors, timeouts,
  408/429/5xx (``Retry-After`` honoured, up to a cap); a body cut short is resumed with
  ``Range`` (``If-Range`` guards against mixing two versions) when the server supports it, and
  restarted otherwise.
- Content-Length is checked against what arrived; ``max_size`` is enforced on the announced
  size *and* while streaming (a server can lie or omit the length).
- Bytes are hashed as they are written, so the digest is of exactly what is on disk.

``requests`` is imported on first use, never at import time. URLs in messages are redacted
(no query string: CDN URLs carry signatures), and tokens never appear in messages or reprs.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from scanner import __version__
from scanner.sources.interface import FetchError, HttpStatusError, SizeLimitError, TransportError
from scanner.sources.transfer import (
    CHUNK,
    Body,
    Download,
    Retries,
    RetryableStatus,
    Truncated,
    chunks,
    parse_retry_after,
    redact,
    short,
)

__all__ = ["Download", "HttpClient", "HttpOptions", "HttpStatusError", "SizeLimitError",
           "TransportError", "parse_retry_after", "redact"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_JSON_BYTES = 64 << 20

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class HttpOptions:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0            # first retry delay; doubles per failure
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # a longer Retry-After is reported, not waited for
    max_redirects: int = 5
    ca_bundle: Path | None = None
    allow_insecure_http: bool = False
    max_size: int | None = None     # bytes per file

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HttpOptions:
        """Defaults, then ``MLSCAN_HTTP_TIMEOUT``, ``MLSCAN_HTTP_RETRIES``,
        ``MLSCAN_HTTP_BACKOFF``, ``MLSCAN_CA_BUNDLE``, then explicit ``overrides`` (None
        values are ignored). A malformed variable is a :class:`FetchError`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        try:
            if env.get("MLSCAN_HTTP_TIMEOUT"):
                values["connect_timeout"] = values["read_timeout"] = float(env["MLSCAN_HTTP_TIMEOUT"])
            if env.get("MLSCAN_HTTP_RETRIES"):
                values["retries"] = int(env["MLSCAN_HTTP_RETRIES"])
            if env.get("MLSCAN_HTTP_BACKOFF"):
                values["backoff"] = float(env["MLSCAN_HTTP_BACKOFF"])
        except ValueError as exc:
            raise FetchError(f"bad MLSCAN_HTTP_* environment variable: {exc}") from None
        if env.get("MLSCAN_CA_BUNDLE"):
            values["ca_bundle"] = Path(env["MLSCAN_CA_BUNDLE"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class _Secret:
    """A credential that never prints."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


class HttpClient:
    """A requests session with the policy above. Use as a context manager (or call close())."""

    def __init__(self, options: HttpOptions | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options or HttpOptions()
        self.sleep = sleep
        self._session: Any = None
        self._bundle: str | None = None
        self._credentials: dict[tuple[str, str, int | None], _Secret] = {}

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._bundle is not None:
            try:
                os.unlink(self._bundle)
            except OSError:
                pass
            self._bundle = None

    def add_bearer_token(self, origin_url: str, token: str) -> None:
        """Send ``Authorization: Bearer`` to ``origin_url``'s origin only (never across a
        redirect to another host)."""
        self._credentials[_origin(origin_url)] = _Secret(token)

    # -- transport -------------------------------------------------------------------------

    def _get_session(self) -> Any:
        if self._session is None:
            import requests

            session = requests.Session()
            # No environment magic: .netrc would send credentials to hosts the user only typed,
            # and REQUESTS_CA_BUNDLE would replace (not add to) the CA set. Proxies from the
            # environment are still honoured per request.
            session.trust_env = False
            session.headers["User-Agent"] = f"mlscan/{__version__}"
            self._session = session
        return self._session

    def _verify(self) -> str | bool:
        """True (the public CAs), or a bundle of the public CAs plus ``--ca-bundle``."""
        ca_bundle = self.options.ca_bundle
        if ca_bundle is None:
            return True
        if self._bundle is None:
            from requests.utils import DEFAULT_CA_BUNDLE_PATH

            try:
                extra = Path(ca_bundle).read_bytes()
            except OSError as exc:
                raise FetchError(f"--ca-bundle {ca_bundle}: cannot read it ({exc.strerror or exc})") from None
            if b"-----BEGIN CERTIFICATE-----" not in extra:
                raise FetchError(f"--ca-bundle {ca_bundle}: no PEM certificate in it "
                                 "(expected '-----BEGIN CERTIFICATE-----' blocks)")
            fd, name = tempfile.mkstemp(prefix="mlscan-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as handle:
                handle.write(Path(DEFAULT_CA_BUNDLE_PATH).read_bytes() + b"\n" + extra + b"\n")
            self._bundle = name
        return self._bundle

    def _check_hop(self, url: str, previous: str | None) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"{redact(url)}: only https:// URLs can be fetched"
                                 + (f" (redirected from {redact(previous)})" if previous else ""))
        if previous is not None and urlsplit(previous).scheme.lower() == "https" and scheme == "http":
            raise TransportError(f"refused: {redact(previous)} redirected to plain http "
                                 f"{redact(url)}, a downgrade anyone on the network path could "
                                 "exploit. Ask the publisher for an https link.")
        if scheme == "http" and not self.options.allow_insecure_http:
            raise TransportError(f"refused plain http: {redact(url)}. Use an https:// URL; only if "
                                 "there is none, pass --allow-insecure-http and a --sha256 from "
                                 "a trusted channel.")

    def _headers_for(self, url: str, headers: Mapping[str, str]) -> dict[str, str]:
        out = dict(headers)
        origin = _origin(url)
        secret = self._credentials.get(origin)
        if secret is not None and origin[0] == "https":  # never a token in clear text
            out["Authorization"] = f"Bearer {secret.reveal()}"
        return out

    def open(self, url: str, headers: Mapping[str, str] | None = None) -> tuple[Any, str, tuple[str, ...]]:
        """One attempt: GET ``url`` following redirects by hand. Returns (response with a 2xx
        status, final URL, hosts reached over plain http). Raises retryable requests errors or
        ``RetryableStatus``, and FetchError subclasses for final failures."""
        import requests

        session = self._get_session()
        current, previous = url, None
        insecure: list[str] = []
        for _hop in range(self.options.max_redirects + 1):
            self._check_hop(current, previous)
            if urlsplit(current).scheme.lower() == "http":
                insecure.append(urlsplit(current).hostname or "")
            try:
                response = session.get(
                    current, headers=self._headers_for(current, headers or {}), stream=True,
                    allow_redirects=False, verify=self._verify(),
                    timeout=(self.options.connect_timeout, self.options.read_timeout),
                    proxies=requests.utils.get_environ_proxies(current))
            except requests.exceptions.SSLError as exc:
                if "certificate" not in str(exc).lower():
                    raise  # a handshake cut short by the network: retried like other drops
                raise TransportError(
                    f"{redact(current)}: TLS verification failed ({short(str(exc), 120)}). If the "
                    "server uses a private CA, pass its certificate with --ca-bundle FILE.") from None
            status = response.status_code
            if status in REDIRECTS:
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise FetchError(f"{redact(current)}: redirect ({status}) without a Location")
                previous, current = current, urljoin(current, location)
                continue
            if 200 <= status < 300:
                return response, current, tuple(insecure)
            reason = response.reason or ""
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            detail = short(response.headers.get("X-Error-Message", ""), 200)
            response.close()
            if status in RETRY_STATUSES:
                raise RetryableStatus(current, status, reason, retry_after)
            raise HttpStatusError(current, status, _status_message(current, status, reason, detail))
        raise TransportError(f"{redact(url)}: more than {self.options.max_redirects} redirects; "
                             "refusing to follow further")

    def _retryable(self) -> tuple[type[BaseException], ...]:
        import requests
        import urllib3

        # urllib3 errors come from raw reads (_chunks): timeouts and broken connections.
        return (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError,
                RetryableStatus, Truncated)

    # -- operations -------------------------------------------------------------------------

    def get_json(self, url: str, headers: Mapping[str, str] | None = None,
                 max_bytes: int = MAX_JSON_BYTES) -> tuple[Any, Mapping[str, str], str | None]:
        """GET a JSON document (bounded); returns (data, headers, the Link rel="next" URL)."""
        import json

        retries = Retries(self.options, self.sleep, url)
        while True:
            try:
                response, final, _ = self.open(url, {"Accept": "application/json", **(headers or {})})
                with response:
                    body = bytearray()
                    for chunk in response.iter_content(CHUNK):
                        body += chunk
                        if len(body) > max_bytes:
                            raise SizeLimitError(f"{redact(final)}: the answer is larger than "
                                                 f"{max_bytes >> 20} MiB; not a listing")
                    next_url = response.links.get("next", {}).get("url")
                    answer_headers = dict(response.headers)
            except self._retryable() as exc:
                retries.failed(exc, progressed=False)
                continue
            try:
                return json.loads(bytes(body)), answer_headers, next_url
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise FetchError(f"{redact(final)}: the answer is not JSON ({exc}); is the "
                                 "endpoint right?") from None

    def download(self, url: str, target: Path, *, algorithms: Iterable[str],
                 size_hint: int | None = None, expected_size: int | None = None,
                 progress: Progress | None = None) -> Download:
        """Stream ``url`` into ``target`` (created/truncated), hashing as it writes.

        ``size_hint`` is the size git-sha1 commits to (it is left out when unknown);
        ``expected_size`` stops the download as soon as the body is known to be larger (the
        result is then ``complete=False``). ``max_size`` raises :class:`SizeLimitError`.
        """
        wanted = sorted({a for a in algorithms if a != "git-sha1" or size_hint is not None} | {"sha256"})
        retries = Retries(self.options, self.sleep, url)
        state = Body(self.options.max_size, expected_size, url)
        with open(target, "wb") as out:
            while True:
                before = state.written
                try:
                    headers = {"Accept-Encoding": "identity"}
                    if state.written:
                        headers["Range"] = f"bytes={state.written}-"
                        if state.validator:
                            headers["If-Range"] = state.validator
                    response, final, insecure = self.open(url, headers)
                    state.insecure.update(insecure)
                    with response:
                        if not state.begin(response, out):
                            continue  # the server sent a range we did not ask for: start over
                        state.ensure_hasher(wanted, size_hint)
                        if state.oversize():
                            return state.result(final, complete=False)
                        for chunk in chunks(response, state.encoded):
                            if not state.write(out, chunk):
                                return state.result(final, complete=False)
                            if progress is not None:
                                progress(state.written, state.total)
                        state.finish(out)
                        return state.result(final, complete=True)
                except HttpStatusError as exc:
                    if exc.status != 416 or not state.written:
                        raise
                    state.restart(out)  # our Range no longer fits the file: start over, once
                    retries.failed(exc, progressed=False)
                except self._retryable() as exc:
                    total = "?" if state.total is None else str(state.total)
                    retries.failed(exc, progressed=state.written > before,
                                   received=f"{state.written} of {total} bytes received")


def _status_message(url: str, status: int, reason: str, detail: str) -> str:
    where = redact(url)
    extra = f" ({detail})" if detail else ""
    if status == 401:
        return f"{where}: 401 Unauthorized{extra}: the resource needs credentials you did not give."
    if status == 403:
        return f"{where}: 403 Forbidden{extra}: your credentials do not grant access."
    if status == 404:
        return f"{where}: 404 Not Found{extra}: check the URL (name, revision and path)."
    if status == 416:
        return f"{where}: 416 Range Not Satisfiable{extra}: the file changed on the server; retry."
    return f"{where}: the server answered {status} {reason}{extra}."
