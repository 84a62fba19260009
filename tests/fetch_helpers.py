"""A real HTTP(S) server on 127.0.0.1 for the fetch tests: the Hugging Face Hub API, its CDN,
plain file downloads, and the faults a downloader must survive or refuse.

Routes (``{kind}`` is ``models`` or ``datasets``):
  GET /api/{kind}/{owner}/{name}/revision/{rev}        -> {"sha": commit}
  GET /api/{kind}/{owner}/{name}/tree/{commit}[/{dir}]  -> listing, paginated (Link rel="next")
  GET [/datasets]/{owner}/{name}/resolve/{commit}/{path} -> small files; LFS files 302 to the CDN
  GET /cdn/{sha256}                                    -> LFS content (Range supported)
  GET /files/{name}                                    -> plain files (Range supported)

Faults are set per request path (``hub.fault(path, kind, times=...)``): ``drop`` (send half
the body, then close), ``wrong`` (other bytes), ``slow`` (stall before answering), ``redirect``
(302 to a location), ``huge`` (announce an enormous Content-Length), ``status`` (answer a status
with headers), ``pointer`` (an LFS pointer instead of the content), ``norange`` (ignore Range),
``nolength`` (no Content-Length: the body ends when the connection closes).
One fault applies per request, the first with ``times`` left.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

TOKEN = "hf_test_secret_token_do_not_print"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(data)}\n"
            f"size {len(data)}\n").encode()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]]       # commit -> {path: content}
    refs: dict[str, str]                        # branch/tag -> commit
    lfs: set[str] = field(default_factory=set)  # paths stored in LFS
    private: bool = False
    kind: str = "models"


@dataclass
class Fault:
    kind: str
    times: int
    arg: Any = None


class Hub:
    """Server state: repositories, plain files, faults, and a log of every request."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self.page_size = 2
        self.cdn_base = ""     # set by serve(): where /resolve/ redirects LFS files
        self.stop = threading.Event()
        self.on_resolve: Any = None  # hook called with the path of each /resolve/ request
        self.lock = threading.Lock()

    def add_repo(self, repo_id: str, files: dict[str, bytes], lfs: set[str] = frozenset(),  # type: ignore[assignment]
                 commit: str = "a" * 40, branch: str = "main", private: bool = False,
                 kind: str = "models") -> str:
        repo = self.repos.setdefault(repo_id, Repo({}, {}, set(), private, kind))
        repo.commits[commit] = dict(files)
        repo.refs[branch] = commit
        repo.lfs |= set(lfs)
        return commit

    def fault(self, path: str, kind: str, times: int = 1, arg: Any = None) -> None:
        self.faults.setdefault(path, []).append(Fault(kind, times, arg))

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults.get(path, []):
                if fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def requests_to(self, prefix: str) -> list[tuple[str, dict[str, str]]]:
        return [entry for entry in self.log if entry[0].startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the test log
        pass

    @property
    def hub(self) -> Hub:
        return self.server.hub

    def base(self) -> str:
        return f"{self.server.scheme}://{self.headers.get('Host')}"

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        self.hub.log.append((self.path, dict(self.headers)))
        fault = self.hub.take_fault(path)
        if fault is not None and fault.kind == "slow":
            self.hub.stop.wait(fault.arg or 5.0)
            fault = None
        if fault is not None and fault.kind == "status":
            status, headers = fault.arg
            return self.send_bytes(json.dumps({"error": "fault"}).encode(), status, headers)
        if fault is not None and fault.kind == "redirect":
            return self.send_bytes(b"", 302, {"Location": fault.arg})
        try:
            if path.startswith("/api/"):
                return self.api(path, parse_qs(parts.query))
            if path.startswith("/cdn/"):
                return self.content(self.cdn_blob(path[len("/cdn/"):]), fault)
            if path.startswith("/files/"):
                data = self.hub.files.get(path[len("/files/"):])
                if data is None:
                    return self.send_bytes(b"not found", 404, {"X-Error-Message": "Entry not found"})
                return self.content(data, fault)
            return self.resolve(path, fault)
        except KeyError as exc:
            return self.send_bytes(b"{}", 404, {"X-Error-Message": f"{exc.args[0]} not found"})

    def cdn_blob(self, digest: str) -> bytes:
        for repo in self.hub.repos.values():
            for files in repo.commits.values():
                for data in files.values():
                    if sha256(data) == digest:
                        return data
        raise KeyError("blob")

    def authorized(self, repo: Repo) -> bool:
        return not repo.private or self.headers.get("Authorization") == f"Bearer {TOKEN}"

    def find_repo(self, segments: list[str], kind: str) -> tuple[Repo, str, list[str]]:
        repo_id = "/".join(segments[:2])
        repo = self.hub.repos.get(repo_id)
        if repo is None or repo.kind != kind:
            raise KeyError("Repository")
        return repo, repo_id, segments[2:]

    def api(self, path: str, query: dict[str, list[str]]) -> None:
        segments = path[len("/api/"):].split("/")
        kind = segments[0]
        repo, repo_id, rest = self.find_repo(segments[1:], kind)
        if not self.authorized(repo):
            return self.send_bytes(b"{}", 401, {"X-Error-Message": "Invalid credentials in Authorization header"})
        if rest[0] == "revision":
            revision = unquote("/".join(rest[1:]))
            commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
            if commit is None:
                raise KeyError("Revision")
            return self.send_json({"id": repo_id, "sha": commit})
        if rest[0] == "tree":
            commit, directory = rest[1], "/".join(rest[2:])
            files = repo.commits[commit]
            recursive = query.get("recursive", ["false"])[0] == "true"
            entries = self.listing(repo, files, directory, recursive)
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start:start + self.hub.page_size]
            headers = {}
            if start + self.hub.page_size < len(entries):
                suffix = quote(directory) if directory else ""
                nxt = (f"{self.base()}/api/{kind}/{repo_id}/tree/{commit}{'/' + suffix if suffix else ''}"
                       f"?recursive={'true' if recursive else 'false'}&cursor={start + self.hub.page_size}")
                headers["Link"] = f'<{nxt}>; rel="next"'
            return self.send_json(page, headers)
        raise KeyError("API route")

    @staticmethod
    def listing(repo: Repo, files: dict[str, bytes], directory: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = directory + "/" if directory else ""
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            below = path[len(prefix):].split("/")
            for depth in range(1, len(below)):  # directories on the way
                if not recursive and depth > 1:
                    break
                sub = prefix + "/".join(below[:depth])
                entries[sub] = {"type": "directory", "path": sub, "oid": "d" * 40, "size": 0}
            if not recursive and len(below) > 1:
                continue
            data = files[path]
            if path in repo.lfs:
                pointer = lfs_pointer(data)
                entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(pointer),
                                 "lfs": {"oid": sha256(data), "size": len(data), "pointerSize": len(pointer)}}
            else:
                entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(data)}
        return [entries[k] for k in sorted(entries)]

    def resolve(self, path: str, fault: Fault | None) -> None:
        segments = path.lstrip("/").split("/")
        kind = "models"
        if segments[0] in ("datasets", "spaces"):
            kind, segments = segments[0], segments[1:]
        repo, _repo_id, rest = self.find_repo(segments, kind)
        if rest[:1] != ["resolve"] or len(rest) < 3:
            raise KeyError("Route")
        if not self.authorized(repo):
            return self.send_bytes(b"{}", 401, {})
        commit, file_path = rest[1], "/".join(rest[2:])
        if self.hub.on_resolve is not None:
            self.hub.on_resolve(path)
        data = repo.commits[commit].get(file_path)
        if data is None:
            raise KeyError("Entry")
        if file_path in repo.lfs:
            location = f"{self.hub.cdn_base or self.base()}/cdn/{sha256(data)}?X-Amz-Signature=secret-sig"
            return self.send_bytes(b"", 302, {"Location": location, "X-Repo-Commit": commit,
                                              "X-Linked-Etag": f'"{sha256(data)}"',
                                              "X-Linked-Size": str(len(data))})
        return self.content(data, fault, {"X-Repo-Commit": commit, "ETag": f'"{git_sha1(data)}"'})

    def content(self, data: bytes, fault: Fault | None, extra: dict[str, str] | None = None) -> None:
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{sha256(data)}"', **(extra or {})}
        if fault is not None and fault.kind == "wrong":
            # by default the same size (a careful attacker keeps the size), other bytes
            data = fault.arg if fault.arg is not None else bytes(b ^ 0x5A for b in data)
        if fault is not None and fault.kind == "pointer":
            data = lfs_pointer(data)
        if fault is not None and fault.kind == "huge":
            self.send_response(200)
            self.send_header("Content-Length", str(fault.arg))
            self.end_headers()
            self.wfile.write(data[:10])
            self.close_connection = True
            return None
        if fault is not None and fault.kind == "nolength":  # body delimited by closing
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            return None
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and not (fault is not None and fault.kind == "norange"):
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range == headers["ETag"]:
                start = int(wanted[len("bytes="):].split("-")[0])
        body = data[start:]
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if fault is not None and fault.kind == "drop":
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            share = 0.5 if fault.arg is None else fault.arg  # how much of the body gets through
            self.wfile.write(body[: int(len(body) * share)])
            self.wfile.flush()
            self.close_connection = True
            return None
        return self.send_bytes(body, status, headers)

    def send_json(self, value: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(json.dumps(value).encode(), 200, {"Content-Type": "application/json", **(headers or {})})

    def send_bytes(self, body: bytes, status: int, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up (timeout tests)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    hub: Hub
    scheme: str

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or reject our certificate are part of the tests


def serve(hub: Hub, tls: tuple[Path, Path] | None = None) -> tuple[_Server, str]:
    """Start a threaded server on 127.0.0.1 (HTTPS when ``tls`` = (cert, key) is given)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.hub = hub
    server.scheme = "https" if tls else "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"{server.scheme}://127.0.0.1:{server.server_address[1]}"


def stop(server: _Server) -> None:
    server.hub.stop.set()
    server.shutdown()
    server.server_close()


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key) PEMs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlscan test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
