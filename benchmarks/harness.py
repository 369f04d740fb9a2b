"""What every benchmark returns, plus the small measuring tools they share.

A :class:`Figure` is one row of the table and one object in the JSON: its ``values`` are plain
numbers (milliseconds, lines per second, megabytes... the unit is in each key's name), ``how``
says exactly what was timed, and ``status`` says whether the target was met.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psutil

#: Status of a figure: the target was met, missed, there is no target ("info"), it could not be
#: measured ("skipped": a prerequisite is missing, the reason is in ``note``) or it broke.
STATUSES = ("pass", "fail", "info", "skipped", "error")


@dataclasses.dataclass
class Figure:
    """One measured figure."""

    id: str
    title: str
    how: str
    target: str
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "info"
    note: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dataclasses.asdict(self)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) by linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean in milliseconds, plus the sample count."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p90_ms": round(percentile(ms, 0.90), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3) if ms else math.nan,
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else math.nan,
    }


def verdict(ok: bool) -> str:
    """``pass`` or ``fail``."""
    return "pass" if ok else "fail"


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (default: this one) in MiB."""
    return float(psutil.Process(pid or os.getpid()).memory_info().rss) / 2**20


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    times = psutil.Process(pid or os.getpid()).cpu_times()
    return float(times.user + times.system)


def socket_count(pid: int | None = None, *, remote_port: int | None = None) -> int:
    """TCP sockets the process holds, optionally only those connected to ``remote_port``."""
    connections = psutil.Process(pid or os.getpid()).net_connections(kind="tcp")
    return sum(
        1
        for c in connections
        if remote_port is None or (c.raddr and c.raddr.port == remote_port)  # type: ignore[union-attr]
    )


class PeakRss:
    """Samples a process's RSS on a thread every ``interval_seconds``; keeps the peak."""

    def __init__(self, pid: int | None = None, interval_seconds: float = 0.05) -> None:
        self._process = psutil.Process(pid or os.getpid())
        self._interval = interval_seconds
        self._stop = threading.Event()
        self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            except psutil.Error:
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        """The peak in MiB."""
        return float(self.peak_bytes) / 2**20


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def format_table(figures: Sequence[Figure]) -> str:
    """A plain-text table: one line per figure with its key values, target and status."""
    rows = [("figure", "result", "target", "status")]
    for figure in figures:
        rows.append((figure.title, _short_values(figure), figure.target, figure.status))
    widths = [
        min(max(len(row[i]) for row in rows), limit) for i, limit in enumerate((34, 70, 40, 7))
    ]
    lines = []
    for index, row in enumerate(rows):
        cells = [_wrap_cell(cell, width) for cell, width in zip(row, widths, strict=True)]
        height = max(len(cell) for cell in cells)
        for line_no in range(height):
            parts = [
                (cell[line_no] if line_no < len(cell) else "").ljust(width)
                for cell, width in zip(cells, widths, strict=True)
            ]
            lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _wrap_cell(text: str, width: int) -> list[str]:
    words = text.split(" ")
    out: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if len(candidate) > width and current:
            out.append(current)
            current = word
        else:
            current = candidate
    out.append(current)
    return out


#: The values each figure shows in the table (the JSON holds them all).
TABLE_KEYS = (
    "p50_ms",
    "p99_ms",
    "worker_slot_s_mean",
    "worker_runs_per_job",
    "ratio_p50_vs_polling",
    "ratio_p99_vs_polling",
    "cold_p50_ms",
    "cached_p50_ms",
    "lines_per_second",
    "percent_of_logger",
    "lost",
    "duplicated",
    "percent_of_core",
    "wakeups_per_second",
    "rest_requests",
    "rss_growth_mb",
    "cpu_percent_of_core",
    "sockets_client",
    "insight_wall_seconds",
    "sleep_wall_seconds",
    "overhead_percent",
)


def _short_values(figure: Figure) -> str:
    if figure.status in ("skipped", "error"):
        return figure.note[:200]
    parts = []
    for key in TABLE_KEYS:
        if key in figure.values:
            value = figure.values[key]
            if isinstance(value, float):
                value = f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
            parts.append(f"{key}={value}")
    return " ".join(parts) if parts else "-"
