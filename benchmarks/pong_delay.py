"""Pong delay while forwarding a run-log flood at the task logger's full rate, both modes.

The emulator (its own process, so no shared GIL) pings every ``PING_INTERVAL_SECONDS`` with
ping control frames and records when each ping went out and when its pong came back
(``time.monotonic``, one clock for every process on the machine). The client follows one job
that streams ``lines`` run-log lines as fast as the emulator can send them, and forwards each
line to a logger with a formatting handler, as the task logger does:

* blocking: :class:`~airflow_insight.transport.sync_driver.SyncJobFollower`, lines logged in
  the driver's event sink (the operator's path);
* deferred: a :class:`~airflow_insight.transport.socket_hub.SocketHub` watch whose consumer logs
  each line and yields to the loop every ``LINES_PER_YIELD`` lines (the trigger's path).

Figures: pong delay p50/p99 (target p99 <= 50 ms) and the forwarding rate (lines per second from
the first forwarded line to the last). Printed, never asserted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable

from airflow_insight.protocol import events as ev
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.socket_hub import SocketHub
from airflow_insight.transport.sync_driver import SyncJobFollower
from benchmarks.emulator_proc import CLIENT_ID, CLIENT_SECRET, EmulatorProcess
from benchmarks.harness import Figure, latency_summary, verdict

PING_INTERVAL_SECONDS = 0.05
#: The trigger's pace (airflow_insight.triggers.insight.LINES_PER_YIELD).
LINES_PER_YIELD = 200
TARGET_P99_MS = 50.0


def _task_logger(mode: str) -> logging.Logger:
    """A logger that formats every record into a buffer, as Airflow's task handler would."""
    logger = logging.getLogger(f"benchmarks.pong_delay.{mode}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("[%(asctime)s] {%(filename)s:%(lineno)d} %(message)s"))
    logger.handlers[:] = [handler]
    return logger


class _Rate:
    """Counts forwarded lines and times the first and last one."""

    def __init__(self) -> None:
        self.lines = 0
        self.first = 0.0
        self.last = 0.0

    def add(self, count: int) -> None:
        now = time.monotonic()
        if not self.lines:
            self.first = now
        self.lines += count
        self.last = now

    def per_second(self) -> float:
        span = self.last - self.first
        return round(self.lines / span) if span > 0 else 0.0


def _settings(emu: EmulatorProcess) -> ConnectionSettings:
    return ConnectionSettings(emu.base_url, CLIENT_ID, CLIENT_SECRET)


def _request(job_id: str) -> dict[str, object]:
    return {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}


def _blocking(emu: EmulatorProcess, job_id: str, rate: _Rate) -> None:
    logger = _task_logger("blocking")

    def sink(batch: ev.Event) -> None:
        if not isinstance(batch, ev.RunLogLines):
            return
        for line in batch.lines:
            logger.info(line)
        rate.add(len(batch.lines))

    settings = _settings(emu)
    config = FollowerConfig(silence_limit_seconds=30.0)
    with (
        InsightRestClient(settings) as rest,
        SyncJobFollower(settings, rest, on_event=sink, config=config) as driver,
    ):
        driver.open()
        driver.submit(_request(job_id))
        driver.wait(job_id, timeout_seconds=600.0)


def _deferred(emu: EmulatorProcess, job_id: str, rate: _Rate) -> None:
    logger = _task_logger("deferred")
    settings = _settings(emu)

    async def main() -> None:
        with InsightRestClient(settings) as rest:
            await asyncio.to_thread(rest.submit_job, _request(job_id), None, None)
        watch = SocketHub.for_running_loop().watch(
            "bench", settings, job_id, config=FollowerConfig(silence_limit_seconds=30.0)
        )
        try:
            while True:
                event = await watch.next_event()
                if isinstance(event, ev.RunLogLines):
                    for count, line in enumerate(event.lines, start=1):
                        logger.info(line)
                        if count % LINES_PER_YIELD == 0:
                            await asyncio.sleep(0)
                    rate.add(len(event.lines))
                elif not isinstance(event, ev.Event) or isinstance(event, ev.JobFinished):
                    return
        finally:
            watch.close()
            await asyncio.sleep(0.2)  # let the hub close its socket

    asyncio.run(main())


def _pong_delays(emu: EmulatorProcess, since: float) -> list[float]:
    pings: dict[str, float] = {}
    delays: list[float] = []
    for kind, at, payload in emu.call("pings", since=since)["entries"]:
        if kind == "ping":
            pings[payload] = at
        elif payload in pings:
            delays.append(at - pings.pop(payload))
    return delays


def pong_delay(lines: int) -> list[Figure]:
    """One figure per mode; see the module docstring."""
    script = {
        "name": "flood",
        "queued_seconds": 0.05,
        "log_lines": lines,
        "lines_per_second": 1e9,
        "batch_size": 200,
        "completing_seconds": 0.01,
    }
    runs: list[tuple[str, Callable[[EmulatorProcess, str, _Rate], None]]] = [
        ("blocking", _blocking),
        ("deferred", _deferred),
    ]
    figures = []
    with EmulatorProcess(
        ping_interval_seconds=PING_INTERVAL_SECONDS, pong_timeout_seconds=60.0
    ) as emu:
        emu.rule("pong-*", script)
        for mode, run in runs:
            rate = _Rate()
            started = time.monotonic()
            run(emu, f"pong-{mode}", rate)
            summary = latency_summary(_pong_delays(emu, started))
            figures.append(
                Figure(
                    id=f"pong_delay_{'sync' if mode == 'blocking' else 'deferred'}",
                    title=f"Pong delay during a run-log flood ({mode})",
                    how=(
                        f"emulator pings every {PING_INTERVAL_SECONDS * 1000:.0f} ms while one job"
                        f" streams {lines} lines flat out; ping sent -> pong received (monotonic);"
                        " each line formatted by a logging handler"
                    ),
                    target=f"p99 <= {TARGET_P99_MS:.0f} ms",
                    values={**summary, "lines_per_second": rate.per_second()},
                    status=verdict(summary["p99_ms"] <= TARGET_P99_MS),
                    seconds=round(time.monotonic() - started, 2),
                )
            )
    return figures


def main() -> None:
    """Print both figures (``python -m benchmarks.pong_delay [lines]``)."""
    import os
    import sys

    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"load average before: {os.getloadavg()}")
    for figure in pong_delay(lines):
        print(figure.id, figure.values, figure.status)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
