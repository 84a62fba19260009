"""Reading manifests: OMS bundles and statements, and the checksum conventions of model zoos.

Each reader turns one format into a :class:`Manifest` whose entries carry their own algorithm,
so strength is graded per entry: ``SHA256SUMS`` with sha256 is strong, a Caffe readme's sha1 is
weak, a torch.hub file-name prefix is partial. Readers never trust their input: sizes and
formats are checked, and names are validated later by the verifier.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from scanner.integrity import oms
from scanner.integrity.interface import (
    HEX_LENGTHS,
    PREFIX_ALGORITHM,
    Digest,
    Manifest,
    ManifestEntry,
    ManifestError,
    ManifestReader,
)

MAX_MANIFEST_BYTES = 64 << 20  # a manifest is metadata; anything bigger is not one
LFS_POINTER_HEADER = b"version https://git-lfs.github.com/spec/v1"
# torch.hub: ``name-<hex prefix>.ext``; at least 8 hex (an empty prefix must never "match")
HUB_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_BSD = re.compile(r"^(SHA256|SHA384|SHA512|SHA1|MD5|BLAKE2b(?:-512)?) \((.+)\) = ([0-9a-fA-F]+)$")
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{32,128}) [ *](.+)$")


def _by_length(hex_value: str, hint: str = "") -> str:
    """The algorithm a bare hex digest implies (file-name hints break the 128-hex tie)."""
    length = len(hex_value)
    if length == 128:
        return "blake2b" if "b2" in hint.lower() or "blake" in hint.lower() else "sha512"
    for algorithm in ("sha256", "sha384", "sha1", "md5"):
        if HEX_LENGTHS[algorithm] == length:
            return algorithm
    raise ManifestError(f"a {length}-hex digest matches no supported algorithm")


def _json(path: Path, data: bytes) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None


def _looks_json(head: bytes) -> bool:
    return head.lstrip()[:1] in (b"{", b"[")


class OmsBundleReader(ManifestReader):
    kind = "oms"

    def detect(self, path: Path, head: bytes) -> bool:
        return _looks_json(head) and b"application/vnd.dev.sigstore.bundle" in head

    def read(self, path: Path) -> Manifest:
        parsed = read_bundle(path)
        if parsed.manifest is None:
            raise ManifestError(f"{path}: {parsed.problem}")
        return parsed.manifest


class StatementReader(ManifestReader):
    """An unsigned OMS manifest (``mlscan manifest create``): the in-toto statement itself."""

    kind = "oms-statement"

    def detect(self, path: Path, head: bytes) -> bool:
        return _looks_json(head) and b"in-toto.io/Statement" in head

    def read(self, path: Path) -> Manifest:
        manifest = oms.parse_statement(_read(path), str(path), None)
        return Manifest(manifest.entries, self.kind, str(path), manifest.ignore_paths,
                        manifest.allow_symlinks, root_digest=manifest.root_digest)


class ChecksumFileReader(ManifestReader):
    """``sha256sum`` output (``<hex>  path`` / ``<hex> *path``) and BSD tags
    (``SHA256 (path) = <hex>``); the algorithm comes from the tag or the digest length."""

    kind = "checksums"

    def detect(self, path: Path, head: bytes) -> bool:
        first = next((ln for ln in head.decode("utf-8", "replace").splitlines()
                      if ln.strip() and not ln.startswith("#")), "")
        return bool(_SUM_LINE.match(first) or _BSD.match(first))

    def read(self, path: Path) -> Manifest:
        text = _read(path).decode("utf-8", "replace")
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            bsd, plain = _BSD.match(line), _SUM_LINE.match(line)
            if bsd:
                tag, name, value = bsd.groups()
                algorithm = "blake2b" if tag.lower().startswith("blake2b") else tag.lower()
            elif plain:
                value, name = plain.groups()
                algorithm = _by_length(value, path.name)
            else:
                raise ManifestError(f"{path}:{number}: not a checksum line: {line[:80]!r}")
            if len(value) != HEX_LENGTHS.get(algorithm, -1):
                raise ManifestError(f"{path}:{number}: a {algorithm} digest has {len(value)} hex digits")
            entries.append(ManifestEntry(name.removeprefix("./"), Digest(algorithm, value.lower())))
        if not entries:
            raise ManifestError(f"{path}: no checksum lines")
        return Manifest(tuple(entries), self.kind, str(path))


class CaffeReadmeReader(ManifestReader):
    """Caffe Model Zoo ``readme.md``: YAML front matter with ``caffemodel`` and ``sha1``."""

    kind = "caffe-readme"

    def detect(self, path: Path, head: bytes) -> bool:
        return head.startswith(b"---") and b"sha1:" in head and b"caffemodel" in head

    def read(self, path: Path) -> Manifest:
        lines = _read(path).decode("utf-8", "replace").splitlines()
        try:
            end = lines.index("---", 1)
        except ValueError:
            raise ManifestError(f"{path}: the front matter has no closing '---' line") from None
        fields = {}
        for line in lines[1:end]:  # flat "key: value" pairs; no YAML loader for untrusted text
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip().strip("'\"")
        name, sha1 = fields.get("caffemodel"), fields.get("sha1", "")
        if not name or len(sha1) != 40 or not _HEX.match(sha1):
            raise ManifestError(f"{path}: the front matter needs 'caffemodel' and a 40-hex 'sha1'")
        return Manifest((ManifestEntry(name, Digest("sha1", sha1.lower())),), self.kind, str(path),
                        complete=False)


class OnnxHubReader(ManifestReader):
    """``ONNX_HUB_MANIFEST.json``: model paths with full sha256 and byte size."""

    kind = "onnx-hub"

    def detect(self, path: Path, head: bytes) -> bool:
        return _looks_json(head) and b"model_sha" in head

    def read(self, path: Path) -> Manifest:
        data = _json(path, _read(path))
        if not isinstance(data, list):
            raise ManifestError(f"{path}: an ONNX hub manifest is a JSON list")
        entries = []
        for item in data:
            meta = item.get("metadata") if isinstance(item, dict) else None
            if not isinstance(meta, dict):
                continue
            for path_key, sha_key, size_key in (("model_path", "model_sha", "model_bytes"),
                                                ("model_with_data_path", "model_with_data_sha",
                                                 "model_with_data_bytes")):
                where = item.get(path_key) if path_key == "model_path" else meta.get(path_key)
                sha = meta.get(sha_key)
                if isinstance(where, str) and isinstance(sha, str) and len(sha) == 64:
                    size = meta.get(size_key)
                    entries.append(ManifestEntry(where, Digest("sha256", sha.lower()),
                                                 size if isinstance(size, int) else None))
        if not entries:
            raise ManifestError(f"{path}: no entries with model_path and model_sha")
        return Manifest(tuple(entries), self.kind, str(path), complete=False, catalogue=True)


class HfTreeReader(ManifestReader):
    """A saved Hugging Face tree listing (``/api/models/{repo}/tree/{commit}?recursive=true``):
    ``lfs.oid`` is the sha256 of the content, ``oid`` the git blob sha1 of small files."""

    kind = "hf-tree"

    def detect(self, path: Path, head: bytes) -> bool:
        return _looks_json(head) and b'"oid"' in head and b'"path"' in head

    def read(self, path: Path) -> Manifest:
        data = _json(path, _read(path))
        if not isinstance(data, list):
            raise ManifestError(f"{path}: a Hugging Face tree listing is a JSON list")
        entries = []
        for item in data:
            if not isinstance(item, dict) or item.get("type") != "file":
                continue
            lfs = item.get("lfs")
            if isinstance(lfs, dict) and isinstance(lfs.get("oid"), str):
                digest = Digest("sha256", lfs["oid"].lower())
                size = lfs.get("size", item.get("size"))
            elif isinstance(item.get("oid"), str):
                digest, size = Digest("git-sha1", item["oid"].lower()), item.get("size")
            else:
                continue
            entries.append(ManifestEntry(str(item.get("path")), digest,
                                         size if isinstance(size, int) else None))
        return Manifest(tuple(entries), self.kind, str(path))


class LfsPointerReader(ManifestReader):
    """A git-lfs pointer names the sha256 and size of the file it stands for (the file of the
    same name, once fetched)."""

    kind = "lfs-pointer"

    def detect(self, path: Path, head: bytes) -> bool:
        return head.startswith(LFS_POINTER_HEADER)

    def read(self, path: Path) -> Manifest:
        digest, size = parse_lfs_pointer(_read(path))
        if digest is None:
            raise ManifestError(f"{path}: a git-lfs pointer without 'oid sha256:<64 hex>'")
        return Manifest((ManifestEntry(path.name, digest, size),), self.kind, str(path),
                        complete=False)


class KerasHashReader(ManifestReader):
    """Keras ``file_hash`` values (``{"file.h5": "<hex>"}``, or ``WEIGHTS_HASHES``-style
    ``[with_top, no_top]`` pairs): 64 hex is sha256, anything else md5, as ``get_file`` does."""

    kind = "keras-file-hash"

    def detect(self, path: Path, head: bytes) -> bool:
        return head.lstrip()[:1] == b"{"

    def read(self, path: Path) -> Manifest:
        data = _json(path, _read(path))
        if not isinstance(data, dict):
            raise ManifestError(f"{path}: not a JSON object of file name -> hash")
        entries = []
        for name, value in data.items():
            values = value if isinstance(value, list) else [value]
            for hex_value in values:
                if not isinstance(hex_value, str) or not _HEX.match(hex_value) \
                        or len(hex_value) not in (32, 64):
                    raise ManifestError(f"{path}: {name!r} is not an md5 or sha256 hex digest")
                algorithm = "sha256" if len(hex_value) == 64 else "md5"
                entries.append(ManifestEntry(name, Digest(algorithm, hex_value.lower())))
        return Manifest(tuple(entries), self.kind, str(path), complete=False)


# Order matters: specific JSON shapes before the generic Keras object.
READERS: tuple[ManifestReader, ...] = (
    OmsBundleReader(), StatementReader(), OnnxHubReader(), HfTreeReader(), LfsPointerReader(),
    CaffeReadmeReader(), ChecksumFileReader(), KerasHashReader())


def parse_lfs_pointer(data: bytes) -> tuple[Digest | None, int | None]:
    digest, size = None, None
    for line in data.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "oid" and value.startswith("sha256:") and len(value) == 71:
            digest = Digest("sha256", value[7:].lower())
        elif key == "size" and value.isdigit():
            size = int(value)
    return digest, size


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; not a manifest")
    return data


def read_bundle(path: Path) -> oms.ParsedBundle:
    """An OMS bundle taken apart (trust is decided by ``signature.check_bundle``). A file that
    is not JSON at all is returned as a bundle with a problem: the user said it is a signature."""
    data = _read(path)
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return oms.ParsedBundle("key", None, None, problem=f"{path}: not valid JSON ({exc})")
    if not oms.is_bundle(raw):
        return oms.ParsedBundle("key", None, None,
                                problem=f"{path}: not a Sigstore bundle (no sigstore bundle mediaType)")
    return oms.parse_bundle(raw, str(path))


def detect_reader(path: Path) -> ManifestReader:
    head = _read(path)[:4096]
    for reader in READERS:
        if reader.detect(path, head):
            return reader
    raise ManifestError(
        f"{path}: unknown manifest format. Supported: OMS bundles (model.sig), `mlscan manifest "
        "create` output, sha256sum/SHA256SUMS and BSD-tag files, Caffe readme.md front matter, "
        "ONNX_HUB_MANIFEST.json, Hugging Face tree listings, git-lfs pointers, Keras file_hash JSON")


def load_manifest(path: Path) -> Manifest:
    """Any supported manifest. For an OMS bundle this does NOT check the signature (use
    ``signature.check_bundle`` on ``read_bundle(path)`` for that)."""
    return detect_reader(Path(path)).read(Path(path))


def hub_prefix_manifest(names: list[str], source: str) -> Manifest | None:
    """torch.hub convention: ``resnet18-f37072fd.pth`` claims sha256 starting ``f37072fd``."""
    entries = []
    for name in names:
        match = HUB_PREFIX.search(name.rsplit("/", 1)[-1])
        if match:
            entries.append(ManifestEntry(name, Digest(PREFIX_ALGORITHM, match.group(1))))
    if not entries:
        return None
    return Manifest(tuple(entries), "hub-filename-prefix", source, complete=False)
