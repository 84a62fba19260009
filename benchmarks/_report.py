"""Benchmark rows, targets and their rendering (fixed-width table, Targets section, JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _measure import Measurement


@dataclass
class Row:
    workload: str
    tool: str
    size_mb: float
    wall: float | None           # None: not run (peer missing)
    cpu: float | None = None
    rss_mb: float | None = None
    runs: int = 0
    code: int | None = None
    ratio: float | None = None   # wall / the workload's baseline wall
    baseline: str = ""
    note: str = ""

    @property
    def mb_s(self) -> float | None:
        return self.size_mb / self.wall if self.wall and self.size_mb else None


@dataclass
class Target:
    name: str
    measured: str
    target: str
    status: str                  # MET | MISSED | SKIPPED | ERROR
    value: float | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, object] = field(default_factory=dict)

    def add(self, workload: str, m: Measurement, size_mb: float, baseline: Measurement | None = None,
            note: str = "") -> Row:
        timed_out = m.failed
        ratio = m.wall / baseline.wall if baseline is not None and baseline.wall > 0 else None
        row = Row(workload, m.label, size_mb, m.wall, m.cpu, m.rss_mb, len(m.runs), m.code, ratio,
                  baseline.label if baseline is not None else "",
                  note or ("timed out: wall is a lower bound" if timed_out else ""))
        self.rows.append(row)
        return row

    def missing(self, workload: str, tool: str, reason: str) -> None:
        self.rows.append(Row(workload, tool, 0.0, None, note=reason))

    def target(self, name: str, value: float | None, target: str, ok: bool | None, fmt: str = "{:.2f}x",
               measured: str | None = None) -> None:
        text = measured if measured is not None else (fmt.format(value) if value is not None else "n/a")
        status = "SKIPPED" if ok is None else ("MET" if ok else "MISSED")
        self.targets.append(Target(name, text, target, status, value))

    def error(self, name: str, why: str, target: str) -> None:
        self.targets.append(Target(name, why, target, "ERROR"))


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else "-"


def render(report: Report) -> str:
    head = (f"{'workload':<9}{'tool':<24}{'size MB':>9}{'wall s':>9}{'cpu s':>8}{'RSS MB':>8}"
            f"{'MB/s':>8}{'ratio':>8}  {'vs':<22}{'runs':>4}{'exit':>5}  note")
    lines = ["Results (wall = best run; RSS = peak of the largest process, worst run; ratio = wall / vs)",
             head, "-" * len(head)]
    for r in report.rows:
        if r.wall is None:
            lines.append(f"{r.workload:<9}{r.tool:<24}{'':>9}{'-':>9}{'':>8}{'':>8}{'':>8}{'':>8}  "
                         f"{'':<22}{'':>4}{'':>5}  {r.note}")
            continue
        lines.append(
            f"{r.workload:<9}{r.tool:<24}{_num(r.size_mb or None, '.0f'):>9}{r.wall:>9.3f}"
            f"{_num(r.cpu, '.2f'):>8}{_num(r.rss_mb, '.0f'):>8}{_num(r.mb_s, '.0f'):>8}"
            f"{_num(r.ratio, '.2f'):>8}  {r.baseline:<22}{r.runs:>4}{_num(r.code, 'd'):>5}  {r.note}")
    lines += ["", "Targets", f"{'name':<44}{'measured':>22}  {'target':<22}status",
              "-" * 96]
    for t in report.targets:
        lines.append(f"{t.name:<44}{t.measured:>22}  {t.target:<22}{t.status}")
    met = sum(t.status == "MET" for t in report.targets)
    missed = [t.name for t in report.targets if t.status in ("MISSED", "ERROR")]
    lines.append(f"{met} met, {len(missed)} missed" + (f": {', '.join(missed)}" if missed else ""))
    if report.notes:
        lines += ["", "Notes"] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def save_json(report: Report, path: Path) -> None:
    data = {"meta": report.meta,
            "rows": [dict(asdict(r), mb_s=r.mb_s) for r in report.rows],
            "targets": [asdict(t) for t in report.targets],
            "notes": report.notes}
    path.write_text(json.dumps(data, indent=2) + "\n")
