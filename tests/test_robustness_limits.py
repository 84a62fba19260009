"""Resource exhaustion (issue #6.3): every adversarial input ends in a finding, within the
limits, with the scanning process's peak memory under 512 MB."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.adversarial import (
    CASES,
    RSS_LIMIT_MB,
    deep_archive_nesting,
    nested_zip_bomb,
    pickle_memo_and_stack,
    scan_in_child,
)
from tests.conftest import rule_ids


@pytest.mark.parametrize("name", sorted(CASES))
def test_adversarial_input_ends_in_a_finding_in_bounded_memory(tmp_path: Path, name: str) -> None:
    build, file_name, expected = CASES[name]
    path = tmp_path / file_name
    build(path)
    _wall, rss_mb, code, rules = scan_in_child(path)
    assert code == 1, f"{name}: the scan must fail ({rules})"
    assert rules & expected, f"{name}: expected one of {sorted(expected)}, got {sorted(rules)}"
    assert rss_mb < RSS_LIMIT_MB, f"{name}: peak RSS {rss_mb:.0f} MB"


def _scan(path: Path, **limits: object):  # type: ignore[no-untyped-def]
    from scanner.core.limits import Limits
    from scanner.engine import Scanner, ScanOptions

    return Scanner(ScanOptions(limits=Limits(**limits))).scan([path])  # type: ignore[arg-type]


def test_low_limits_are_enforced_as_findings(tmp_path: Path) -> None:
    memo = tmp_path / "memo.pkl"
    pickle_memo_and_stack(memo, entries=200_000)
    assert "MLS-GEN-012" not in rule_ids(_scan(memo))
    assert "MLS-GEN-012" in rule_ids(_scan(memo, pickle_memo_entries=10_000))
    deep = tmp_path / "deep.zip"
    deep_archive_nesting(deep, depth=5)
    assert "MLS-GEN-004" not in rule_ids(_scan(deep))
    assert "MLS-GEN-004" in rule_ids(_scan(deep, archive_depth=2))
    bomb = tmp_path / "bomb.zip"
    nested_zip_bomb(bomb, levels=1, zeros=4 << 20)
    assert "MLS-ARC-008" in rule_ids(_scan(bomb, compression_ratio=10.0))
