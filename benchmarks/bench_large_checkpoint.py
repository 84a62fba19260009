"""Scan a large PyTorch-style zip checkpoint and report time, memory and the ratio to sha256sum.

    python benchmarks/bench_large_checkpoint.py [--size-gb 1.0] [--keep DIR]

Builds the checkpoint in a temporary directory (stored tensor members written in chunks, a small
data.pkl), then runs ``mlscan scan`` and ``sha256sum`` on it in subprocesses. Target (issue 2):
peak resident memory under 200 MB. Figures are ratios measured in the same run, since the
machine is shared and absolute times are noisy.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

CHUNK = 4 << 20


def build_checkpoint(path: Path, size: int) -> None:
    tensors = 8
    per_tensor = size // tensors
    state = {f"layer{i}.weight": f"storage-{i}" for i in range(tensors)}
    block = os.urandom(CHUNK)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ckpt/data.pkl", pickle.dumps(state, protocol=2))
        zf.writestr("ckpt/version", "3\n")
        for i in range(tensors):
            with zf.open(f"ckpt/data/{i}", "w", force_zip64=True) as member:
                written = 0
                while written < per_tensor:
                    n = min(CHUNK, per_tensor - written)
                    member.write(block[:n])
                    written += n


def run(cmd: list[str]) -> tuple[float, float, int, int]:
    """(wall s, cpu s, peak RSS of this child in KiB, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep the file")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mlscan-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "checkpoint.pt"
    try:
        build_checkpoint(path, int(args.size_gb * (1 << 30)))
        size_mb = path.stat().st_size / 1e6
        run(["cat", str(path)])  # warm the page cache for both contenders alike
        sha = run(["sha256sum", str(path)])
        scan = run([sys.executable, "-m", "scanner", "scan", "--format", "json", str(path)])
        print(f"checkpoint: {size_mb:.0f} MB")
        print(f"{'tool':<12}{'wall s':>9}{'cpu s':>9}{'MB/s':>9}{'peak RSS MB':>13}{'exit':>6}")
        for name, (wall, cpu, rss, code) in (("sha256sum", sha), ("mlscan", scan)):
            print(f"{name:<12}{wall:>9.2f}{cpu:>9.2f}{size_mb / wall:>9.0f}{rss / 1024:>13.1f}{code:>6}")
        print(f"ratio mlscan/sha256sum wall: {scan[0] / sha[0]:.2f}x")
        print(f"peak RSS target < 200 MB: {'met' if scan[2] / 1024 < 200 else 'MISSED'}")
        return 0 if scan[3] in (0, 1) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
