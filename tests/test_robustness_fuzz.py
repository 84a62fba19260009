"""Property-based fuzzing of every parser through the engine: random bytes and mutations of
the committed samples (bit flips, truncation, inflated length fields). A scan must always
finish, never raise, and never report an analyzer crash (MLS-GEN-002 means a parser bug)."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.analyzers.interface import Artifact, ScanContext
from scanner.core.blob import BytesBlob
from scanner.core.finding import Location
from scanner.core.limits import Limits
from scanner.core.rules import load_catalogue
from scanner.engine import _FileScan
from tests.conftest import SAMPLES

SEEDS = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.stat().st_size < 200_000)
LIMITS = Limits(archive_depth=4, archive_members=200, member_size=8 << 20, pickle_memo_entries=10_000,
                pickle_stack_depth=10_000)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scan_bytes(data: bytes, name: str = "sample.bin"):
    scan = _FileScan(ScanContext(load_catalogue(), LIMITS))
    scan.walk(Artifact(Location(name), BytesBlob(data), name))
    return scan.result


def assert_robust(data: bytes, name: str) -> None:
    result = scan_bytes(data, name)   # must not raise
    crashes = [e.message for e in result.errors]
    assert crashes == [], f"analyzer crashed on a mutated {name}: {crashes}"


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    assert_robust(data, "random.pt")


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_bit_flips(seed, data):
    raw = bytearray(seed.read_bytes())
    if not raw:
        return
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    assert_robust(bytes(raw), seed.name)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_truncation(seed, data):
    raw = seed.read_bytes()
    cut = data.draw(st.integers(0, max(0, len(raw) - 1)))
    assert_robust(raw[:cut], seed.name)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_inflated_length_fields(seed, data):
    raw = bytearray(seed.read_bytes())
    if len(raw) < 8:
        return
    pos = data.draw(st.integers(0, len(raw) - 4))
    value = data.draw(st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 1 << 24, len(raw) * 2]))
    raw[pos:pos + 4] = struct.pack("<I", value)
    assert_robust(bytes(raw), seed.name)


def test_seed_corpus_is_not_empty():
    assert len(SEEDS) > 50
