"""Resource-exhaustion inputs against ``mlscan scan``: each must end in a finding, fast, in
bounded memory (target: peak RSS under 512 MB).

    python benchmarks/bench_limits.py

Builds every case of ``fixtures/adversarial.py`` in a temporary directory and scans each in its
own process, reporting wall time, the child's peak RSS, and the rule ids reported.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fixtures.adversarial import CASES, RSS_LIMIT_MB, scan_in_child  # noqa: E402


def main() -> int:
    failures = 0
    print(f"{'input':<34}{'file':>10}{'wall s':>8}{'peak MB':>9}{'exit':>6}  findings")
    with tempfile.TemporaryDirectory(prefix="mlscan-limits-") as tmp:
        for name, (build, file_name, expected) in CASES.items():
            path = Path(tmp) / file_name
            build(path)
            wall, rss, code, rules = scan_in_child(path)
            ok = code == 1 and bool(rules & expected) and rss < RSS_LIMIT_MB
            failures += not ok
            print(f"{name:<34}{path.stat().st_size:>10}{wall:>8.2f}{rss:>9.1f}{code:>6}  "
                  f"{', '.join(sorted(rules))}{'' if ok else '  <-- MISSED'}")
    print(f"target: every input ends in a finding with peak RSS < {RSS_LIMIT_MB} MB: "
          f"{'MET' if not failures else f'MISSED ({failures})'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
