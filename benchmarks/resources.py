"""Idle cost, scale (many deferred jobs in one process) and memory over a long run log."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from airflow_insight.emulator import JobScript
from benchmarks.emulator_proc import EmulatorProcess
from benchmarks.harness import Figure, latency_summary, verdict
from benchmarks.jobs import flood_script, latency_scripts
from benchmarks.latency import run_child


@dataclasses.dataclass(frozen=True)
class IdleSetup:
    """The silent job and the server's keep-alive and token timings."""

    silent_seconds: float
    ping_interval_seconds: float
    token_cap_seconds: float
    settle_seconds: float


IDLE_FULL = IdleSetup(300.0, 30.0, 60.0, 5.0)
IDLE_QUICK = IdleSetup(20.0, 2.0, 6.0, 2.0)


class IdleRun:
    """The idle measurement runs in the background (it is mostly waiting) while others run."""

    def __init__(self, setup: IdleSetup) -> None:
        self.setup = setup
        self.emulator = EmulatorProcess(
            ping_interval_seconds=setup.ping_interval_seconds,
            token_max_age_cap_seconds=setup.token_cap_seconds,
            record_messages=False,
        )
        self._child: subprocess.Popen[str] | None = None
        self._started = 0.0

    def start(self) -> IdleRun:
        """Start the emulator and the follower child."""
        self._started = time.perf_counter()
        self.emulator.start()
        # EXECUTING with no log, then COMPLETING for the whole silent stretch: nothing is sent
        # but pings (and answers to the client's UPDATE_TOKEN / REST checks).
        self.emulator.rule(
            "idle-*",
            JobScript(
                name="idle",
                queued_seconds=0.05,
                log_lines=0,
                completing_seconds=self.setup.silent_seconds,
            ),
        )
        arguments = (
            f'{{"base_url": "{self.emulator.base_url}", "job_id": "idle-1", '
            f'"settle_seconds": {self.setup.settle_seconds}}}'
        )
        self._child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", "idle", arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self

    def finish(self) -> Figure:
        """Wait for the child; turn what it measured into the figure."""
        assert self._child is not None
        try:
            stdout, stderr = self._child.communicate(timeout=self.setup.silent_seconds + 120)
            lines = stdout.strip().splitlines()
            if self._child.returncode != 0 or not lines:
                raise RuntimeError(f"idle child failed: {stderr.strip()[-800:]}")
            import json

            result = json.loads(lines[-1])
            since = result["window_start"]
            requests = self.emulator.call("requests", since=since)["counts"]
            frames = self.emulator.call("frames", since=since)["counts"]
        finally:
            self.emulator.stop()
        setup = self.setup
        window = result["window_seconds"]
        percent = 100.0 * result["cpu_seconds"] / window
        wakeups = result["voluntary_switches"] / window
        values = {
            "window_seconds": round(window, 2),
            "cpu_seconds": round(result["cpu_seconds"], 4),
            "percent_of_core": round(percent, 4),
            "wakeups_per_second": round(wakeups, 2),
            "rest_requests": sum(requests.values()),
            "rest_by_kind": requests,
            "socket_frames": frames,
            "status": result["status"],
        }
        # "No polling loop": at most a few wake-ups a second (pings, token refreshes, the
        # silence-limit REST checks, thread timers), and no REST beyond tokens and checks.
        polling_free = wakeups < 5
        return Figure(
            id="idle_cost",
            title="Idle cost (blocking follower)",
            how=(
                f"A child process follows one job that stays silent for {setup.silent_seconds:g} s "
                f"(server pings every {setup.ping_interval_seconds:g} s, token lifetime capped at "
                f"{setup.token_cap_seconds:g} s, so UPDATE_TOKEN every ~"
                f"{setup.token_cap_seconds * 2 / 3:g} s; follower silence limit 60 s). CPU = "
                f"user+sys time of the child from {setup.settle_seconds:g} s after submit to the "
                "end, over that wall time; wake-ups = voluntary context switches a second (a "
                "polling loop shows up there). Runs in the background while the other figures "
                "run." + (" QUICK MODE: scaled-down timings." if setup == IDLE_QUICK else "")
            ),
            target="<= 0.5 % of one core; no polling loop",
            values=values,
            status=verdict(percent <= 0.5 and polling_free and result["status"] == "COMPLETED"),
            seconds=time.perf_counter() - self._started,
        )


def memory(lines: int) -> Figure:
    """RSS growth of the blocking follower while one job writes ``lines`` run-log lines."""
    started = time.perf_counter()
    log_path = tempfile.mktemp(prefix="insight-bench-memory-", suffix=".log")
    try:
        with EmulatorProcess(record_messages=False, record_limit=10_000) as emu:
            emu.rule("mem-*", flood_script(lines, batch_size=1000))
            result = run_child(
                "memory", base_url=emu.base_url, job_id="mem-1", lines=lines, log_path=log_path
            )
    finally:
        if os.path.exists(log_path):
            os.remove(log_path)
    growth = result["peak_mb"] - result["baseline_mb"]
    live = result["at_last_live_line_mb"]
    values = {
        "lines": lines,
        "rss_growth_mb": round(growth, 2),
        "baseline_mb": round(result["baseline_mb"], 2),
        "peak_mb": round(result["peak_mb"], 2),
        "growth_at_last_live_line_mb": None
        if live is None
        else round(live - result["baseline_mb"], 2),
        "forwarded": result["forwarded"],
        "lines_per_second": round(lines / result["seconds"], 1),
        "status": result["status"],
    }
    ok = growth <= 20 and result["forwarded"] == lines and result["status"] == "COMPLETED"
    return Figure(
        id="memory",
        title="Memory over a long run log",
        how=(
            f"A child process follows one job that writes {lines:,} run-log lines as fast as the "
            "emulator can (batches of 1000) with SyncJobFollower; each line goes to a logger "
            "with a FileHandler (a task log file). RSS sampled every 20 ms; growth = peak - RSS "
            "after the socket opened, before submit. growth_at_last_live_line = RSS when the "
            "last line arrived over the socket (before the terminal status and the final REST "
            "run-log fetch)."
        ),
        target="<= 20 MB",
        values=values,
        status=verdict(ok),
        seconds=time.perf_counter() - started,
    )


def scale(jobs: int, queued_seconds: float, executing: tuple[float, float]) -> Figure:
    """Many deferred jobs at once on one event loop in one process."""
    started = time.perf_counter()
    with EmulatorProcess(record_messages=False, record_limit=None) as emu:
        ids = [f"scale-{index:05d}" for index in range(jobs)]
        scripts = latency_scripts(jobs, queued_seconds=queued_seconds, executing_seconds=executing)
        emu.rules(list(zip(ids, scripts, strict=True)))
        result = run_child("deferred", base_url=emu.base_url, job_ids=ids, use_trigger=True)
        times = emu.status_times("scale-")
        usage = emu.call("usage")
        websockets_opened = emu.call("frames")["counts"]["ws_open"]
    returned: dict[str, float] = result["returned"]
    latencies = [returned[j] - times[j]["COMPLETED"] for j in ids if "COMPLETED" in times[j]]
    summary = latency_summary(latencies)
    bad = {j: s for j, s in result["statuses"].items() if s != "COMPLETED"}
    cpu_percent = 100.0 * result["cpu_seconds"] / result["wall_seconds"]
    values: dict[str, Any] = {
        "jobs": jobs,
        "via": result["via"],
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "rss_before_mb": round(result["rss_before_mb"], 1),
        "rss_peak_mb": round(result["rss_peak_mb"], 1),
        "rss_growth_mb": round(result["rss_peak_mb"] - result["rss_before_mb"], 1),
        "cpu_seconds": round(result["cpu_seconds"], 2),
        "cpu_percent_of_core": round(cpu_percent, 1),
        "wall_seconds": round(result["wall_seconds"], 1),
        "sockets_client": websockets_opened,
        "tcp_sockets_client": result["sockets_at_first_end"],
        "emulator_cpu_seconds": round(usage["cpu_seconds"], 1),
        "not_completed": len(bad),
    }
    # Issue targets: p99 <= 100 ms, one socket and RSS growth <= 60 MB at the full size (5,000).
    ok = (
        summary["p99_ms"] <= 100
        and websockets_opened == 1
        and values["rss_growth_mb"] <= 60
        and not bad
    )
    return Figure(
        id="scale",
        title=f"Scale: {jobs:,} deferred jobs, one process",
        how=(
            f"{jobs:,} jobs submitted over REST, then followed at once in one child process on one "
            f"asyncio loop via {result['via']} (the triggerer's equivalent). Jobs stay QUEUED "
            f"{queued_seconds:g} s (all subscribed first), then run {executing[0]:g}-"
            f"{executing[1]:g} s (seeded spread) writing 20 lines each, so ends spread over that "
            "window. Latency = event yielded - emulator set COMPLETED (one CLOCK_MONOTONIC). RSS "
            "sampled every 50 ms (growth = peak - before following); CPU = the child's user+sys "
            "over the follow wall time; sockets_client = WebSockets the emulator saw opened during "
            "the run; tcp_sockets_client = the child's TCP sockets to the emulator port when "
            "the first job ended (REST keep-alive connections included)."
        ),
        target="p99 <= 100 ms, 1 socket per connection, RSS growth <= 60 MB",
        values=values,
        status=verdict(ok),
        note=f"{len(bad)} not COMPLETED, e.g. {list(bad.items())[:2]}" if bad else "",
        seconds=time.perf_counter() - started,
    )
