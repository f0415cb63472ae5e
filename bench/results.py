"""A measured ratio with its raw figures and goal, the table, and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import ROOT


@dataclass
class Result:
    key: str
    label: str
    value: float | None  # the ratio (or count) compared with the goal
    goal: str  # ">= 0.5", "<= 1.5", "== 0"
    raw: str  # the raw figures, human-readable, beside the ratio
    figures: dict[str, Any] = field(default_factory=dict)
    why: str = ""  # when the goal is missed: the measured cause

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        op, _, bound = self.goal.partition(" ")
        limit = float(bound)
        return {">=": self.value >= limit, "<=": self.value <= limit, "==": self.value == limit}[op]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": None if self.value is None else round(self.value, 4),
            "goal": self.goal,
            "met": self.met,
            "raw": self.raw,
            "why": self.why,
            "figures": self.figures,
        }


class Cpu:
    """CPU seconds used by some processes and by the whole machine over an interval."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    @staticmethod
    def _machine() -> tuple[float, float]:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) / Cpu.TICK, idle / Cpu.TICK

    @classmethod
    def _pid(cls, pid: int) -> float:
        try:
            parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (float(parts[11]) + float(parts[12])) / cls.TICK

    def __enter__(self) -> Cpu:
        self.started = time.monotonic()
        self.m0 = self._machine()
        self.p0 = {pid: self._pid(pid) for pid in self.pids}
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.started
        total, idle = self._machine()
        self.machine_busy = ((total - self.m0[0]) - (idle - self.m0[1])) / self.seconds
        self.ours = sum(self._pid(pid) - self.p0[pid] for pid in self.pids) / self.seconds

    def describe(self) -> str:
        return (
            f"server processes used {self.ours:.2f} of {os.cpu_count()} cores, "
            f"the whole machine {self.machine_busy:.2f}"
        )


def machine() -> dict[str, Any]:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": load,
    }


def table(results: list[Result]) -> str:
    rows = [("ratio / check", "value", "goal", "met", "raw figures (same run)")]
    for r in results:
        value = (
            "n/a" if r.value is None else f"{r.value:.3g}" if r.value < 1000 else f"{r.value:.0f}"
        )
        met = {True: "yes", False: "NO", None: "—"}[r.met]
        rows.append((r.label, value, r.goal, met, r.raw))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 24)
    missed = [r for r in results if r.met is False]
    if missed:
        lines.append("")
        lines.append("Goals missed, and the measured cause:")
        for r in missed:
            lines.append(f"  * {r.label}: {r.why or 'no cause measured'}")
    return "\n".join(lines)


def write_json(results: list[Result], meta: dict[str, Any], path: Path | None = None) -> Path:
    path = path or ROOT / "bench" / "results.json"
    payload = {"meta": meta, "results": [r.as_dict() for r in results]}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    return path
