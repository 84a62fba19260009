"""mlscan benchmark suite (issue 9): speed and memory against sha256sum and peer scanners.

    python benchmarks/run.py                    # everything, about 3 minutes on 2 cores
    python benchmarks/run.py --peers            # also install/run picklescan, modelscan, ModelAudit
    python benchmarks/run.py --quick --only W1,W3 --json figures.json

Workloads are built in a temporary directory (``--workdir``), measured, and deleted one by one
(``--keep`` keeps them). Every figure is a child process measured with ``os.wait4``: wall time
(best of up to 3 runs, page cache warmed first), CPU time (user+sys) and peak RSS. Targets are
ratios measured in the same run, because the machine is shared and absolute times drift.

  W1  1 GiB PyTorch zip checkpoint: full scan (analysis + sha256) vs sha256sum    <= 1.15x
  W2  four 1 GiB checkpoints, mlscan --jobs 2 vs serial sha256sum of all four     <= 0.65x
  W3  1,000 small pickles: one scan of the directory vs picklescan                <= 1.0x
  W4  300 MiB legacy pickle of byte strings: scan MB/s vs in-process SHA-256 MB/s >= 25%
  W5  2 GiB safetensors; ONNX + 500 MiB external data: vs sha256sum of the bytes  <= 1.15x
  START  ``mlscan --version`` vs ``python -c pass`` (best of 10)                  <= 1.5x
  Peak RSS of every mlscan run                                                     < 200 MB
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _peers  # noqa: E402
import _workloads as wl  # noqa: E402
from _measure import Measurement, Spec, hashlib_throughput, measure, warm  # noqa: E402
from _report import Report, render, save_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GiB, MiB = 1 << 30, 1 << 20
ALL = ("W1", "W2", "W3", "W4", "W5", "START")
RSS_LIMIT_MB = 200.0
PEER_WORKLOADS = ("W1", "W3", "W4")


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.report = Report()
        self.blocks = wl.Blocks()
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "NO_COLOR": "1"}
        # Measure mlscan as installed: with byte code cached (pip compiles on install), not
        # re-compiling modules on every run because this shell exports PYTHONDONTWRITEBYTECODE.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.peers: dict[str, str | None] = {}   # peer -> script path (None: missing)
        self.peer_reason: dict[str, str] = {}

    # -- helpers ----------------------------------------------------------------------------
    def size(self, nbytes: int, floor: int = 4 * MiB) -> int:
        return max(floor, int(nbytes * self.args.scale))

    def mlscan(self, label: str, *args: str) -> Spec:
        return Spec(label, [sys.executable, "-m", "scanner", *args], self.env, self.args.timeout)

    def external(self, label: str, cmd: list[str]) -> Spec:
        return Spec(label, cmd, None, self.args.timeout)

    def measure(self, *specs: Spec, repeat: int | None = None) -> list[Measurement]:
        return measure(specs, repeat=repeat or self.args.repeat, budget=self.args.budget)

    def check_mlscan(self, name: str, m: Measurement) -> bool:
        """mlscan exits 0 (clean) or 1 (findings); anything else is a broken run."""
        if m.failed or m.code not in (0, 1):
            self.report.error(name, f"mlscan exit {m.code}{' (timeout)' if m.failed else ''}", "exit 0/1")
            tail = m.best.stderr_tail.strip().splitlines()[-3:]
            self.report.notes.append(f"{name}: mlscan failed: {' | '.join(tail)}")
            return False
        if m.code == 1:
            self.explain_findings(name, m)
        return True

    def explain_findings(self, name: str, m: Measurement) -> None:
        """Exit 1 on a benign workload: rerun once with the report kept and say which findings."""
        report_path = self.workdir / "report.json"
        cmd = [report_path.as_posix() if arg == os.devnull else arg for arg in m.cmd]
        subprocess.run(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        try:
            data = json.loads(report_path.read_text())
            failing = [f for f in data["findings"] if f["severity"] in ("critical", "high")]
            summary = "; ".join(f"{f['rule_id']} ({f['severity']}) at {f.get('location', {}).get('display', '?')}: "
                                f"{str(f.get('evidence', ''))[:100]}" for f in failing[:3])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            summary = f"report unreadable: {exc}"
        self.report.notes.append(f"{name}: mlscan exited 1 on a benign input: {summary or 'no high+ finding'}")

    def rss_target(self, workload: str, *ms: Measurement) -> None:
        peak = max(m.rss_mb for m in ms)
        self.report.target(f"{workload} peak RSS (mlscan)", peak, f"< {RSS_LIMIT_MB:.0f} MB",
                           peak < RSS_LIMIT_MB, fmt="{:.0f} MB")

    def peer_specs(self, workload: str, target: Path) -> list[Spec]:
        """Specs for the installed peers; a row saying why for each missing one."""
        specs: list[Spec] = []
        if self.args.no_peers:
            return specs
        for peer in _peers.PEERS:
            script = self.peers.get(peer.name)
            if script is None:
                self.report.missing(workload, peer.name, self.peer_reason.get(peer.name, "not installed"))
            else:
                specs.append(Spec(peer.name, peer.command(script, target), _peers.peer_env(),
                                  self.args.peer_timeout))
        return specs

    def peer_rows(self, workload: str, size_mb: float, ours: Measurement,
                  measured: list[Measurement]) -> dict[str, Measurement]:
        for m in measured:
            row = self.report.add(workload, m, size_mb)
            if m.code not in (0, 1) and not m.failed:
                row.note = f"exit {m.code}: {' '.join(m.best.stderr_tail.strip().splitlines()[-1:])[:60]}"
            bound = "<= " if m.failed else ""
            self.report.notes.append(f"{workload}: mlscan / {m.label} wall = {bound}{ours.wall / m.wall:.2f}x "
                                     f"({ours.wall:.2f} s vs {'>= ' if m.failed else ''}{m.wall:.2f} s)")
        return {m.label: m for m in measured}

    # -- workloads --------------------------------------------------------------------------
    def w1(self) -> None:
        path = self.workdir / "w1" / "checkpoint.pt"
        path.parent.mkdir()
        size = wl.build_torch_zip(path, self.size(GiB), self.blocks)
        mb = size / 1e6
        warm([path])
        peers = self.peer_specs("W1", path)
        sha, floor, ours, *others = self.measure(
            self.external("sha256sum", ["sha256sum", str(path)]),
            self.external("python hashlib (child)", [sys.executable, "-c", _HASH_SNIPPET, str(path)]),
            self.mlscan("mlscan scan", "scan", str(path), "--format", "json", "-o", os.devnull), *peers)
        self.report.add("W1", sha, mb)
        self.report.add("W1", floor, mb, sha)
        self.report.add("W1", ours, mb, sha)
        if self.check_mlscan("W1 scan / sha256sum", ours):
            ratio = ours.wall / sha.wall
            self.report.target(f"W1 scan / sha256sum ({mb:.0f} MB .pt)", ratio, "<= 1.15x", ratio <= 1.15)
            self.rss_target("W1", ours)
            self.report.notes.append(
                f"W1: mlscan / python-hashlib SHA-256 child = {ours.wall / floor.wall:.2f}x; sha256sum "
                f"hashes at {mb / sha.wall:.0f} MB/s here, hashlib (OpenSSL) at {mb / floor.wall:.0f} MB/s")
        self.peer_rows("W1", mb, ours, others)
        self.cleanup(path.parent)

    def w2(self) -> None:
        directory = self.workdir / "w2"
        directory.mkdir()
        paths = []
        for i in range(4):
            path = directory / f"shard-{i}.pt"
            wl.build_torch_zip(path, self.size(GiB), self.blocks)
            paths.append(path)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        warm(paths)
        sha, ours = self.measure(
            self.external("sha256sum x4 (serial)", ["sha256sum", *map(str, paths)]),
            self.mlscan("mlscan scan --jobs 2", "scan", str(directory), "--jobs", "2",
                        "--format", "json", "-o", os.devnull))
        self.report.add("W2", sha, mb)
        self.report.add("W2", ours, mb, sha)
        if self.check_mlscan("W2 scan --jobs 2 / sha256sum", ours):
            ratio = ours.wall / sha.wall
            self.report.target("W2 scan --jobs 2 / serial sha256sum", ratio, "<= 0.65x", ratio <= 0.65)
            self.rss_target("W2", ours)
        self.cleanup(directory)

    def w3(self) -> None:
        directory = self.workdir / "w3"
        count = max(10, round(1000 * self.args.scale))
        total = wl.build_small_pickles(directory, count)
        mb = total / 1e6
        peers = self.peer_specs("W3", directory)
        ours, *others = self.measure(
            self.mlscan(f"mlscan scan ({count} files)", "scan", str(directory), "--format", "json",
                        "-o", os.devnull), *peers)
        self.report.add("W3", ours, mb)
        measured = self.peer_rows("W3", mb, ours, others)
        if self.check_mlscan("W3", ours):
            self.peer_target("W3 scan / picklescan", ours, measured.get("picklescan"), 1.0)
            self.peer_target("W3 scan / ModelAudit (far ahead)", ours, measured.get("modelaudit"), 0.5)
            self.rss_target("W3", ours)
            self.report.notes.append(f"W3: {count} pickles, {mb:.1f} MB, {ours.wall / count * 1e3:.2f} ms "
                                     "per file including interpreter start-up")
        self.cleanup(directory)

    def peer_target(self, name: str, ours: Measurement, peer: Measurement | None, limit: float) -> None:
        if peer is None:
            self.report.target(name, None, f"<= {limit:.2f}x", None,
                               measured="peers disabled" if self.args.no_peers
                               else "not installed (run with --peers)")
            return
        ratio = ours.wall / peer.wall
        # A peer that timed out ran at least this long: the ratio is an upper bound.
        text = f"{'<= ' if peer.failed else ''}{ratio:.2f}x"
        self.report.target(name, ratio, f"<= {limit:.2f}x", ratio <= limit, measured=text)

    def w4(self) -> None:
        path = self.workdir / "w4" / "legacy.pkl"
        path.parent.mkdir()
        size = wl.build_legacy_pickle(path, self.size(300 * MiB), self.blocks)
        mb = size / 1e6
        warm([path])
        hash_s = min(hashlib_throughput([path])[0] for _ in range(3))
        hash_rate = mb / hash_s
        peers = self.peer_specs("W4", path)
        ours, *others = self.measure(
            self.mlscan("mlscan scan", "scan", str(path), "--format", "json", "-o", os.devnull), *peers)
        self.report.add("W4", ours, mb)
        if self.check_mlscan("W4", ours):
            rate = mb / ours.wall
            share = rate / hash_rate
            self.report.target("W4 scan MB/s / single-core SHA-256 MB/s", share * 100, ">= 25%",
                               share >= 0.25, measured=f"{share * 100:.0f}% ({rate:.0f}/{hash_rate:.0f})")
            self.rss_target("W4", ours)
            self.report.notes.append(f"W4: in-process hashlib SHA-256 (1 MiB reads): {hash_rate:.0f} MB/s; "
                                     f"mlscan end to end (start-up, analysis, hash, report): {rate:.0f} MB/s")
        self.peer_rows("W4", mb, ours, others)
        self.cleanup(path.parent)

    def w5(self) -> None:
        directory = self.workdir / "w5"
        directory.mkdir()
        st = directory / "model.safetensors"
        size = wl.build_safetensors(st, self.size(2 * GiB), self.blocks)
        mb = size / 1e6
        warm([st])
        sha, ours = self.measure(
            self.external("sha256sum safetensors", ["sha256sum", str(st)]),
            self.mlscan("mlscan scan safetensors", "scan", str(st), "--format", "json", "-o", os.devnull))
        self.report.add("W5", sha, mb)
        self.report.add("W5", ours, mb, sha)
        st.unlink()
        onnx_dir = directory / "onnx"
        files = wl.build_onnx_external(onnx_dir, self.size(500 * MiB), self.blocks)
        onnx_mb = sum(f.stat().st_size for f in files) / 1e6
        warm(files)
        sha2, ours2 = self.measure(
            self.external("sha256sum onnx+data", ["sha256sum", *map(str, files)]),
            self.mlscan("mlscan scan onnx dir", "scan", str(onnx_dir), "--format", "json", "-o", os.devnull))
        self.report.add("W5", sha2, onnx_mb)
        self.report.add("W5", ours2, onnx_mb, sha2)
        if self.check_mlscan("W5 safetensors", ours) and self.check_mlscan("W5 onnx", ours2):
            for name, m, base in (("W5 safetensors scan / sha256sum", ours, sha),
                                  ("W5 ONNX+external scan / sha256sum", ours2, sha2)):
                ratio = m.wall / base.wall
                self.report.target(name, ratio, "<= 1.15x", ratio <= 1.15)
            self.rss_target("W5", ours, ours2)
        self.cleanup(directory)

    def start(self) -> None:
        base, ours = self.measure(self.external("python -c pass", [sys.executable, "-c", "pass"]),
                                  self.mlscan("mlscan --version", "--version"), repeat=10)
        self.report.add("START", base, 0.0)
        self.report.add("START", ours, 0.0, base)
        if self.check_mlscan("START", ours):
            ratio = ours.wall / base.wall
            self.report.target("START mlscan --version / python -c pass", ratio, "<= 1.50x", ratio <= 1.5)
        self.report.notes.append("START: top 5 cumulative imports of `import scanner.cli` (after "
                                 "interpreter start-up): "
                                 + "; ".join(f"{name} {ms:.1f} ms" for name, ms in self.import_times()))

    def import_times(self, top: int = 5) -> list[tuple[str, float]]:
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import scanner.cli"],
                              capture_output=True, text=True, env=self.env, check=False)
        rows: list[tuple[str, float]] = []
        for line in done.stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                if parts[2].strip() == "site" and not parts[2].startswith("  "):
                    rows = []  # everything so far was interpreter start-up, as in `python -c pass`
                    continue
                rows.append((parts[2].strip(), int(parts[1]) / 1000))
        return sorted(rows, key=lambda r: -r[1])[:top]

    def cleanup(self, path: Path) -> None:
        if not self.args.keep:
            shutil.rmtree(path, ignore_errors=True)

    # -- driver -----------------------------------------------------------------------------
    def setup_peers(self) -> None:
        if self.args.no_peers or not set(self.args.only) & set(PEER_WORKLOADS):
            return
        if self.args.peers:
            for name, reason in _peers.install(log=lambda s: print(s, flush=True)).items():
                self.peer_reason[name] = reason
        for peer in _peers.PEERS:
            self.peers[peer.name] = None if peer.name in self.peer_reason else _peers.find(peer)
            if self.peers[peer.name] is None:
                self.peer_reason.setdefault(peer.name, "not installed (run with --peers)")
                self.report.notes.append(f"peer {peer.name}: {self.peer_reason[peer.name]}")
            else:
                self.report.notes.append(f"peer {peer.name}: {self.peers[peer.name]}")

    def run(self) -> Report:
        steps: dict[str, Callable[[], None]] = {"W1": self.w1, "W2": self.w2, "W3": self.w3,
                                                "W4": self.w4, "W5": self.w5, "START": self.start}
        self.setup_peers()
        if self.args.scale != 1:
            self.report.notes.append(f"scale {self.args.scale:g}: targets are set for full-size inputs; at "
                                     "smaller sizes mlscan's fixed start-up (0.1-0.4 s) weighs more")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "scanner"), str(ROOT / "signatures")],
                       env=self.env, stdout=subprocess.DEVNULL, check=False)
        for name in ALL:
            if name in self.args.only:
                started = time.perf_counter()
                print(f"[{name}] building and measuring ...", file=sys.stderr, flush=True)
                steps[name]()
                print(f"[{name}] done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        return self.report


_HASH_SNIPPET = ("import hashlib,sys\nh=hashlib.sha256()\nb=bytearray(1<<20);v=memoryview(b)\n"
                 "with open(sys.argv[1],'rb',buffering=0) as f:\n"
                 "    while n:=f.readinto(b): h.update(v[:n])\nprint(h.hexdigest())")


def needed_bytes(only: list[str], scale: float) -> int:
    per = {"W1": GiB, "W2": 4 * GiB, "W3": 8 * MiB, "W4": 300 * MiB, "W5": 2 * GiB, "START": 0}
    return int(max(per[w] for w in only) * scale) + 256 * MiB


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--quick", action="store_true", help="1/8 sizes (a smoke run)")
    parser.add_argument("--scale", type=float, default=None, help="size multiplier (default 1, --quick 0.125)")
    parser.add_argument("--workdir", type=Path, default=None, help="build inputs under this directory (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the built inputs")
    parser.add_argument("--peers", action="store_true",
                        help="install picklescan/modelscan/ModelAudit into a cached venv and run them")
    parser.add_argument("--no-peers", action="store_true", help="never run peers, even if installed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best wall time counts")
    parser.add_argument("--budget", type=float, default=30.0, help="stop repeating a command after this many s")
    parser.add_argument("--timeout", type=float, default=300.0, help="kill an mlscan/sha256sum run after s")
    parser.add_argument("--peer-timeout", type=float, default=30.0,
                        help="kill a peer run after s (its time then counts as at least this)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(args.only) - set(ALL))
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    if args.scale is None:
        args.scale = 0.125 if args.quick else 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("sha256sum") is None and set(args.only) & {"W1", "W2", "W5"}:
        print("sha256sum (coreutils) is required for W1, W2 and W5", file=sys.stderr)
        return 2
    base = args.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(base).free
    if free < needed_bytes(args.only, args.scale):
        print(f"not enough disk under {base}: {free / GiB:.1f} GiB free, "
              f"{needed_bytes(args.only, args.scale) / GiB:.1f} GiB needed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="mlscan-bench-", dir=base))
    started = time.perf_counter()
    bench = Bench(args, workdir)
    try:
        report = bench.run()
    finally:
        if args.keep:
            print(f"inputs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    report.meta = {"python": sys.version.split()[0], "platform": platform.platform(),
                   "cpus": os.cpu_count(), "scale": args.scale, "workloads": args.only,
                   "elapsed_s": round(elapsed, 1)}
    print(f"mlscan benchmarks: python {report.meta['python']}, {os.cpu_count()} CPUs, scale {args.scale:g}, "
          f"{elapsed:.0f} s total\n")
    print(render(report), end="")
    if args.json:
        save_json(report, args.json)
    return 1 if any(t.status == "ERROR" for t in report.targets) else 0


if __name__ == "__main__":
    sys.exit(main())
