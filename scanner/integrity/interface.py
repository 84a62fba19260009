"""The integrity data model: expected digests (a manifest), what was checked, and the verdict.

Verification is a diff between an expected manifest and the files on disk. Every manifest
source (an OMS signature bundle, ``SHA256SUMS``, a Caffe ``readme.md``, an ONNX hub manifest, a
Hugging Face tree listing...) is turned into the same :class:`Manifest`, so one verifier and one
set of rules serve them all. Everything here is frozen: verification is stateless, nothing from
one model's verification (ignore paths, keys) can leak into the next.
"""

from __future__ import annotations

import enum
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

# Digest algorithms mlscan can compute, by manifest name. ``git-sha1`` is the git blob id
# (sha1 over "blob <size>\0" + content), what Hugging Face lists for small files.
STRONG_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "blake2b"})
WEAK_ALGORITHMS = frozenset({"sha1", "md5", "git-sha1"})
PREFIX_ALGORITHM = "sha256-prefix"
HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "blake2b": 128, "sha1": 40, "md5": 32,
               "git-sha1": 40}


class Strength(enum.Enum):
    """How much a digest match proves."""

    STRONG = "strong"    # collision-resistant, full length: a match means "the same bytes"
    WEAK = "weak"        # md5/sha1/git-sha1: practical collisions exist
    PARTIAL = "partial"  # a prefix (torch.hub names): a corruption check, not a tamper check


class ManifestError(ValueError):
    """A manifest or signature file that cannot be read: the message says what, where, and
    what to do. The CLI turns it into exit 2 (an input error, not a verdict)."""


@dataclass(frozen=True)
class Digest:
    algorithm: str  # a name from the sets above, or PREFIX_ALGORITHM
    value: str      # lowercase hex (for a prefix: the prefix)

    @property
    def strength(self) -> Strength:
        if self.algorithm == PREFIX_ALGORITHM:
            return Strength.PARTIAL
        return Strength.WEAK if self.algorithm in WEAK_ALGORITHMS else Strength.STRONG

    @property
    def compute_algorithm(self) -> str:
        """The algorithm to run over the file to check this digest."""
        return "sha256" if self.algorithm == PREFIX_ALGORITHM else self.algorithm

    def matches(self, actual_hex: str) -> bool:
        if self.algorithm == PREFIX_ALGORITHM:
            return actual_hex.startswith(self.value)
        return hmac.compare_digest(actual_hex, self.value)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


@dataclass(frozen=True)
class ManifestEntry:
    """One expected file. ``path`` is relative, POSIX, and validated by the verifier (a
    manifest is attacker-controlled input until its signature checks out)."""

    path: str
    digest: Digest | None
    size: int | None = None


@dataclass(frozen=True)
class SignatureInfo:
    """What a signed manifest says about its signature (filled by the bundle reader)."""

    method: str                 # "key" | "certificate" | "sigstore" | "none"
    key_hint: str | None = None  # OMS publicKey.hint (sha256 of the PEM key), a hint only
    detail: str = ""


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]
    kind: str                        # "oms", "sha256sum", "caffe", "onnx-hub", "lfs-pointer", ...
    source: str                      # where it was read from (for messages)
    ignore_paths: frozenset[str] = frozenset()  # paths the signer excluded (exact, relative)
    allow_symlinks: bool = False
    # A complete manifest lists every file of the model: unlisted files are findings. Partial
    # sources (a Caffe readme names one file) only vouch for what they list.
    complete: bool = True
    # A catalogue lists a whole zoo (ONNX hub): entries absent locally are not "missing", and
    # entries are matched by file name when the zoo path does not exist locally.
    catalogue: bool = False
    signature: SignatureInfo | None = None
    root_digest: str | None = None   # OMS subject digest: the model's identity


class SignatureStatus(enum.Enum):
    VERIFIED = "verified"
    BAD = "bad"                  # does not verify, corrupted envelope, inconsistent payload
    UNTRUSTED = "untrusted"      # valid shape, but no trusted key/root given or it did not match
    UNVERIFIED = "unverified"    # keyless Sigstore bundle without the sigstore extra
    UNSIGNED = "unsigned"        # the manifest carries no signature at all


@dataclass(frozen=True)
class SignatureCheck:
    status: SignatureStatus
    method: str = "none"
    signer: str = ""             # key fingerprint or certificate subject
    algorithm: str = ""          # e.g. "ecdsa-p256-sha256", "ed25519 (mlscan extension)"
    detail: str = ""
    key_id: str = ""             # the verifying trusted key (sha256 of its DER SPKI), if any


class FileStatus(enum.Enum):
    MATCH = "match"
    WEAK_MATCH = "weak-match"       # matched an md5/sha1/git-sha1 digest only
    PARTIAL_MATCH = "partial-match"  # matched a prefix only
    MISMATCH = "mismatch"
    SIZE_MISMATCH = "size-mismatch"
    MISSING = "missing"
    EXTRA = "extra"
    IGNORED = "ignored"             # excluded by the signer's ignore_paths
    SYMLINK = "symlink"
    UNREADABLE = "unreadable"
    UNSAFE_NAME = "unsafe-name"
    NO_DIGEST = "no-digest"         # listed with a size only


@dataclass(frozen=True)
class FileCheck:
    path: str
    status: FileStatus
    algorithm: str = ""
    expected: str = ""
    actual: str = ""
    cached: bool = False


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying one model tree against one manifest."""

    root: str
    manifest_kind: str
    manifest_source: str
    files: tuple[FileCheck, ...]
    signature: SignatureCheck | None = None
    ignore_paths: tuple[str, ...] = ()
    root_digest: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape in reports (``metadata.integrity``)."""
        return {
            "root": self.root,
            "manifest": {"kind": self.manifest_kind, "source": self.manifest_source,
                         "root_digest": self.root_digest, "ignore_paths": list(self.ignore_paths)},
            "signature": None if self.signature is None else {
                "status": self.signature.status.value, "method": self.signature.method,
                "signer": self.signature.signer, "algorithm": self.signature.algorithm,
                "detail": self.signature.detail},
            "files": [{"path": f.path, "status": f.status.value, "algorithm": f.algorithm,
                       "expected": f.expected, "actual": f.actual, "cached": f.cached}
                      for f in self.files],
            "notes": list(self.notes),
        }


class ManifestReader(ABC):
    """Reads one manifest format into a :class:`Manifest`."""

    kind: str

    @abstractmethod
    def detect(self, path: Path, head: bytes) -> bool:
        """Whether ``head`` (the file's first bytes) looks like this format."""

    @abstractmethod
    def read(self, path: Path) -> Manifest:
        """Parse the file; raise :class:`ManifestError` with a useful message on bad input."""
