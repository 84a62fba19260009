"""Hashing throughput of ``mlscan manifest create`` against ``sha256sum`` on the same files.

    python benchmarks/bench_hashing.py [--size-gb 1.0] [--files 4] [--jobs 2]

Two measurements, each the best of three runs on a warm page cache, in one run so the ratios
are comparable on a shared machine:
  1. one large file: ``mlscan manifest create FILE`` vs ``sha256sum FILE`` (target >= 0.9x
     sha256sum's rate, i.e. time ratio <= 1.11);
  2. a directory of several large files: ``mlscan manifest create DIR --jobs 2`` vs serial
     ``sha256sum`` of every file (target: faster than serial).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_large_checkpoint import run  # noqa: E402

CHUNK = 16 << 20


def write_file(path: Path, size: int, block: bytes) -> None:
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            n = min(len(block), size - written)
            handle.write(block[:n])
            written += n


def best(cmd: list[str], repeat: int = 3) -> tuple[float, int]:
    """(best wall seconds, peak RSS KiB) over ``repeat`` runs; raises if the command fails."""
    results = [run(cmd) for _ in range(repeat)]
    for _wall, _cpu, _rss, code in results:
        if code != 0:
            raise SystemExit(f"command failed (exit {code}): {' '.join(cmd)}")
    return min(r[0] for r in results), max(r[2] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of each file")
    parser.add_argument("--files", type=int, default=4, help="files in the directory workload")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("sha256sum"):
        print("sha256sum not found; nothing to compare with", file=sys.stderr)
        return 2
    size = int(args.size_gb * (1 << 30))
    mlscan = [sys.executable, "-m", "scanner"]
    with tempfile.TemporaryDirectory(prefix="mlscan-bench-hash-") as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        block = os.urandom(CHUNK)
        files = [model / f"model-{i:05d}-of-{args.files:05d}.safetensors" for i in range(args.files)]
        for path in files:
            write_file(path, size, block)
        for path in files:  # warm the page cache: we measure hashing, not the disk
            run(["cat", str(path)])
        one_ml, rss_one = best([*mlscan, "manifest", "create", str(files[0]), "-o", os.devnull])
        one_sum, _ = best(["sha256sum", str(files[0])])
        dir_ml, rss_dir = best([*mlscan, "manifest", "create", str(model), "--jobs", str(args.jobs),
                                "-o", os.devnull])
        dir_sum, _ = best(["sha256sum", *map(str, files)])
    gib = size / (1 << 30)
    print(f"{'workload':<44}{'mlscan s':>10}{'sha256sum s':>13}{'ratio':>8}{'mlscan GiB/s':>14}"
          f"{'peak RSS MB':>13}")
    print(f"{f'1 file, {gib:.2f} GiB':<44}{one_ml:>10.2f}{one_sum:>13.2f}{one_ml / one_sum:>8.2f}"
          f"{gib / one_ml:>14.2f}{rss_one / 1024:>13.1f}")
    label = f"{args.files} files x {gib:.2f} GiB, --jobs {args.jobs}"
    print(f"{label:<44}{dir_ml:>10.2f}{dir_sum:>13.2f}{dir_ml / dir_sum:>8.2f}"
          f"{gib * args.files / dir_ml:>14.2f}{rss_dir / 1024:>13.1f}")
    single_ok = one_sum / one_ml >= 0.9
    parallel_ok = dir_ml < dir_sum
    print(f"target single file >= 0.9x sha256sum rate: {'MET' if single_ok else 'MISSED'} "
          f"({one_sum / one_ml:.2f}x)")
    print(f"target directory with {args.jobs} workers faster than serial sha256sum: "
          f"{'MET' if parallel_ok else 'MISSED'} ({dir_ml / dir_sum:.2f}x the time)")
    return 0 if single_ok and parallel_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
