"""Run every benchmark against the emulator on loopback; print a table; write the JSON.

Usage::

    .venv/bin/python -m benchmarks.run --quick [--json out.json]   # smoke run, ~2 minutes
    .venv/bin/python -m benchmarks.run --full  [--json out.json]   # the README's numbers
    .venv/bin/python -m benchmarks.run --quick --only end_latency,memory

Each figure carries ``how`` (what was timed and with which clock), ``target`` and ``status``.
The emulator and each measured client run in separate processes; Airflow runs are ``dag.test()``
in child processes on one temporary SQLite ``AIRFLOW_HOME`` migrated once.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from benchmarks import airflow_figures, latency, pong_delay, resources
from benchmarks.airflow_runs import AirflowHome
from benchmarks.emulator_proc import EmulatorProcess
from benchmarks.harness import Figure, format_table


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each benchmark is in one mode."""

    latency_jobs: int
    poll_concurrency: int
    submit_jobs: int
    throughput_lines: int
    throughput_repeats: int
    idle: resources.IdleSetup
    scale_jobs: int
    scale_queued_seconds: float
    scale_executing_seconds: tuple[float, float]
    memory_lines: int
    whole_task_repeats: int
    #: Lines of the flood the pong delay is measured under (both modes).
    pong_lines: int


FULL = Sizes(
    latency_jobs=200,
    poll_concurrency=10,
    submit_jobs=50,
    throughput_lines=200_000,
    throughput_repeats=3,
    idle=resources.IDLE_FULL,
    scale_jobs=5000,
    # Long enough for all 5,000 triggers to start and subscribe first on a 2-core machine (their
    # connection look-ups queue on one thread), so the figure is the end latency, not start-up.
    scale_queued_seconds=45.0,
    scale_executing_seconds=(1.0, 11.0),
    memory_lines=1_000_000,
    whole_task_repeats=3,
    pong_lines=200_000,
)
QUICK = Sizes(
    latency_jobs=20,
    poll_concurrency=10,
    submit_jobs=10,
    throughput_lines=20_000,
    throughput_repeats=1,
    idle=resources.IDLE_QUICK,
    scale_jobs=100,
    scale_queued_seconds=3.0,
    scale_executing_seconds=(1.0, 3.0),
    memory_lines=50_000,
    whole_task_repeats=1,
    pong_lines=30_000,
)
#: Tiny sizes for the smoke test: every figure present, nothing measured seriously.
SMOKE = dataclasses.replace(
    QUICK,
    latency_jobs=4,
    poll_concurrency=4,
    submit_jobs=2,
    throughput_lines=500,
    idle=resources.IdleSetup(3.0, 1.0, 3.0, 0.5),
    scale_jobs=10,
    scale_queued_seconds=2.0,
    scale_executing_seconds=(0.2, 0.5),
    memory_lines=2000,
    pong_lines=20_000,  # ~0.4 s of flood per mode: several pings even on a fast machine
)
MODES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}

#: The figure ids each group produces (the JSON always lists all of them).
GROUPS: dict[str, tuple[str, ...]] = {
    "end_latency": ("end_latency_polling", "end_latency_sync", "end_latency_deferred"),
    "submit": ("submit_overhead",),
    "pong": ("pong_delay_sync", "pong_delay_deferred"),
    "throughput": (
        "runlog_logger_ceiling",
        "runlog_throughput_sync",
        "runlog_throughput_deferred",
    ),
    "idle": ("idle_cost",),
    "scale": ("scale",),
    "memory": ("memory",),
    "whole_task": ("whole_task",),
}
FIGURE_IDS = tuple(figure_id for ids in GROUPS.values() for figure_id in ids)


class Runner:
    """Runs the selected groups, turning a crash in one into ``error`` figures."""

    def __init__(self, sizes: Sizes, only: set[str]) -> None:
        self.sizes = sizes
        self.only = only
        self.figures: list[Figure] = []
        self._home: AirflowHome | None = None

    def home(self) -> AirflowHome:
        """The Airflow home, migrated on first use."""
        if self._home is None:
            self._home = AirflowHome()
            self._home.migrate()
        return self._home

    def group(self, name: str, run: Callable[[], list[Figure]]) -> None:
        """Run one group (unless deselected) and keep its figures."""
        if self.only and name not in self.only:
            return
        started = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            figures = run()
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            print(traceback.format_exc(), file=sys.stderr)
            figures = [
                Figure(id=i, title=i, how="", target="", status="error", note=detail[:600])
                for i in GROUPS[name]
            ]
        for figure in figures:
            print(f"[bench]   {figure.id}: {figure.status} {figure.values}", file=sys.stderr)
        print(f"[bench] {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr)
        self.figures.extend(figures)

    def close(self) -> None:
        """Remove the Airflow home."""
        if self._home is not None:
            self._home.close()


def run(sizes: Sizes, only: set[str]) -> list[Figure]:
    """Every selected figure, in table order."""
    runner = Runner(sizes, only)
    idle_run = None
    if not only or "idle" in only:
        # Mostly waiting: it runs beside the others and is collected at the end.
        idle_run = resources.IdleRun(sizes.idle).start()
    try:
        with EmulatorProcess(record_messages=False, record_limit=None) as emu:
            runner.group(
                "end_latency",
                lambda: latency.end_latency(emu, sizes.latency_jobs, sizes.poll_concurrency),
            )
            runner.group("submit", lambda: [latency.submit_overhead(emu, sizes.submit_jobs)])
        # An emulator of its own: it pings every 50 ms and records each pong.
        runner.group("pong", lambda: pong_delay.pong_delay(sizes.pong_lines))
        runner.group(
            "throughput",
            lambda: airflow_figures.throughput(
                runner.home(), sizes.throughput_lines, sizes.throughput_repeats
            ),
        )
        runner.group(
            "scale",
            lambda: [
                resources.scale(
                    sizes.scale_jobs, sizes.scale_queued_seconds, sizes.scale_executing_seconds
                )
            ],
        )
        runner.group("memory", lambda: [resources.memory(sizes.memory_lines)])
        runner.group(
            "whole_task",
            lambda: [airflow_figures.whole_task(runner.home(), sizes.whole_task_repeats)],
        )
        if idle_run is not None:
            runner.group("idle", lambda: [idle_run.finish()])
            idle_run = None
    finally:
        if idle_run is not None:
            idle_run.emulator.stop()
        runner.close()
    order = {figure_id: index for index, figure_id in enumerate(FIGURE_IDS)}
    return sorted(runner.figures, key=lambda f: order.get(f.id, len(order)))


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    import logging

    import airflow

    # Importing Airflow routes logging to stdout; this process's INFO lines (token mints of
    # the polling peer) would land in the table.
    logging.getLogger("airflow_insight").setLevel(logging.WARNING)
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "airflow": airflow.__version__,
        "load_average_at_start": [round(x, 2) for x in load],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit status 0 even when targets are missed (it is a report)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode")
    mode.add_argument("--full", action="store_const", const="full", dest="mode")
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="mode", help="tiny")
    parser.add_argument("--json", metavar="PATH", help="write the figures here")
    parser.add_argument("--only", default="", help=f"comma-separated groups: {', '.join(GROUPS)}")
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name}
    unknown = only - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    info = machine()
    figures = run(MODES[args.mode], only)
    elapsed = time.perf_counter() - started
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "mode": args.mode,
        "started_at": started_at,
        "duration_seconds": round(elapsed, 1),
        "machine": info,
        "sizes": dataclasses.asdict(MODES[args.mode]),
        "figures": [figure.to_dict() for figure in figures],
    }
    print(format_table(figures))
    load = info["load_average_at_start"]
    print(f"\n{args.mode} run: {elapsed:.0f} s on {info['cpus']} CPUs (load at start {load})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
