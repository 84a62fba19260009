"""Coverage-guided fuzzing of the whole engine with atheris (long runs, outside CI).

    pip install atheris && python fuzz/fuzz_scan.py -max_total_time=600 fixtures/samples/*/*

Any exception escaping the engine, or any analyzer crash recorded as an error (MLS-GEN-002),
aborts the run with the input saved by libFuzzer as crash-<hash>.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from scanner.analyzers.interface import Artifact, ScanContext
    from scanner.core.blob import BytesBlob
    from scanner.core.finding import Location
    from scanner.core.limits import Limits
    from scanner.core.rules import load_catalogue
    from scanner.engine import _FileScan

LIMITS = Limits(archive_depth=4, archive_members=500, member_size=16 << 20)
RULES = load_catalogue()


def test_one_input(data: bytes) -> None:
    scan = _FileScan(ScanContext(RULES, LIMITS))
    scan.walk(Artifact(Location("fuzz.bin"), BytesBlob(data), "fuzz.bin"))
    if scan.result.errors:
        raise RuntimeError(scan.result.errors[0].message)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
