"""APP_MESSAGE answer latency: the emulator sends a solver callback -> the client's answer arrives.

Three cases, each printed as p50/p90/p99/max in milliseconds (target: p99 <= 50 ms; printed,
never asserted):

* ``alone``: one job, blocking driver, one callback at a time;
* ``flood``: the same while the job floods its run log over the same socket;
* ``jobs``: 1,000 jobs followed on one socket by the asyncio driver (as one triggerer would),
  one callback to each job, paced over a few seconds; the jobs mostly wait (100 run-log lines a
  second between them);
* ``jobs_logging``: the same, with every job writing 2 run-log lines a second (2,000 frames a
  second on the socket).

The emulator runs in this process (its own thread and event loop) and sends each APP_MESSAGE as
its solves do (pending until answered, so the answer is matched); the client runs in a child
process (``python -m benchmarks.app_messages client ...``), so the two never share a GIL. Every
client follows its jobs with a :class:`~airflow_insight.progress.SolverProgress`
handler, so the answer is the real one. Both times come from the emulator's record, on one
clock: when its writer sent the APP_MESSAGE frame (``ws_sent``) and when it decoded the
``APP_MESSAGE_RESPONSE`` (``app_message_response``).

    .venv/bin/python -m benchmarks.app_messages             # all three, full sizes (~2 min)
    .venv/bin/python -m benchmarks.app_messages --quick     # smaller sizes
    .venv/bin/python -m benchmarks.app_messages --only jobs
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow_insight.emulator import Emulator, EmulatorConfig
from airflow_insight.emulator.callbacks import PendingAppMessage
from airflow_insight.emulator.scripts import JobScript
from benchmarks.harness import latency_summary

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"
TARGET_P99_MS = 50.0
# Jobs that outlive the measurement; the child is ended when it is done.
QUIET = JobScript(name="quiet", log_lines=1_000_000, lines_per_second=2.0, batch_size=1)
# 1,000 of these write 100 run-log lines a second between them: deferred jobs mostly wait.
WAITING = JobScript(name="waiting", log_lines=1_000, lines_per_second=0.1, batch_size=1)
FLOOD = JobScript(name="flood", log_lines=10_000_000, lines_per_second=20_000.0, batch_size=200)


def _attributes(best: float, nodes: int) -> dict[str, dict[str, Any]]:
    values = {"MIPBESTOBJVAL": best, "BESTBOUND": 100.0, "MIPSOLS": 1, "NODES": nodes}
    return {name: {"key": 0, "name": name, "value": value} for name, value in values.items()}


# --------------------------------------------------------------------------- child side


def _client(mode: str, base_url: str, job_ids: Sequence[str]) -> None:
    """Submit the jobs, follow them with a SolverProgress handler each, until killed."""
    import logging

    # Every event is formatted and written, as a task log would, but to nowhere.
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    from airflow_insight.progress import SolverProgress, StopAtGap
    from airflow_insight.protocol.events import RunLogLines
    from airflow_insight.settings import ConnectionSettings
    from airflow_insight.transport.rest import InsightRestClient

    settings = ConnectionSettings(
        base_url=base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    run_log = logging.getLogger("insight.run_log")

    def log_event(event: Any) -> None:
        if isinstance(event, RunLogLines):
            # One log record per line, as the operator's run-log sink writes them.
            for line in event.lines:
                run_log.info(line)
            return
        # As an adapter does: every other event logged once, progress on its own logger.
        name = getattr(event, "logger_name", "insight.driver")
        logging.getLogger(name).log(event.log_level, event.describe())

    def request(job_id: str) -> dict[str, Any]:
        return {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}

    def handler() -> SolverProgress:
        # A rule that never fires here: the answer is evaluated, not short-cut.
        return SolverProgress([StopAtGap(1e-9)])

    rest = InsightRestClient(settings)
    if mode == "sync":
        from airflow_insight.transport.sync_driver import SyncJobFollower

        with SyncJobFollower(settings, rest, on_event=log_event) as driver:
            driver.open()
            for job_id in job_ids:
                driver.submit(request(job_id), None, app_messages=handler())
            print("following", flush=True)
            driver.wait(job_ids[0], timeout_seconds=3600.0)
        return

    from airflow_insight.transport.async_driver import AsyncJobFollower

    async def main() -> None:
        async with AsyncJobFollower(settings, rest, on_event=log_event) as driver:
            await driver.open()
            for job_id in job_ids:
                await driver.submit(request(job_id), None, app_messages=handler())
            print("following", flush=True)
            await driver.wait(job_ids[0], timeout_seconds=3600.0)

    asyncio.run(main())


# --------------------------------------------------------------------------- parent side


class Case:
    """One measured case: an emulator, a client process, and callbacks sent to its jobs."""

    def __init__(self, name: str, script: JobScript, mode: str, jobs: int) -> None:
        self.name = name
        self.mode = mode
        self.job_ids = [f"{name}-{index:04d}" for index in range(jobs)]
        config = EmulatorConfig(
            credentials={CLIENT_ID: CLIENT_SECRET},
            ping_interval_seconds=5.0,
            record_limit=None,
            send_queue_limit=1_000_000,
        )
        self.emulator = Emulator(config).start()
        self.emulator.add_script("*", script)
        self.child: subprocess.Popen[str] | None = None

    def start_client(self) -> None:
        arguments = json.dumps(
            {"mode": self.mode, "base_url": self.emulator.base_url, "job_ids": self.job_ids}
        )
        self.child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.app_messages", "client", arguments],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        if line.strip() != "following":
            raise RuntimeError(f"the client did not start: {line!r}")
        _wait_until(lambda: all(self._routed(job_id) for job_id in self.job_ids), 120.0, "sockets")
        # The SUBSCRIBE that follows each submit makes the server re-send a pending message
        # (§B4.6): let those settle so no measured message is sent twice.
        time.sleep(1.0)

    def _routed(self, job_id: str) -> bool:
        def check() -> bool:
            job = self.emulator.hub.jobs.get(job_id)
            return job is not None and self.emulator.hub.connection_of(job) is not None

        result: bool = self.emulator._call(check)
        return result

    def send(self, job_id: str, message_id: str, number: int) -> None:
        """Send one APP_MESSAGE the emulator waits on, as its solves do (it matches the answer)."""
        body = {"problemName": "bench", "attributes": _attributes(200.0 - number * 1e-3, number)}
        pending = PendingAppMessage("GLOBALLOG", body, id=message_id)

        def send_now() -> None:
            self.emulator.hub.send_app_message(self.emulator.hub.jobs[job_id], pending)

        self.emulator._call(send_now)

    def answered(self) -> int:
        return len(self.emulator.hub.record.of_kind("app_message_response"))

    def latencies(self) -> list[float]:
        """Seconds from each APP_MESSAGE frame sent to its answer received."""
        sent: dict[str, float] = {}
        for entry in self.emulator.hub.record.of_kind("ws_sent"):
            text = entry.data.get("text", "")
            if '"APP_MESSAGE"' in text:
                message_id = json.loads(text)["messagePayload"]["appMessageId"]
                sent[message_id] = entry.at
        answered_at: dict[str, float] = {}
        for entry in self.emulator.hub.record.of_kind("app_message_response"):
            if entry.data.get("matched", True):  # the answer the server took, once per message
                answered_at.setdefault(entry.data["appMessageId"], entry.at)
        return [
            at - sent[message_id] for message_id, at in answered_at.items() if message_id in sent
        ]

    def close(self) -> None:
        if self.child is not None:
            self.child.terminate()
            try:
                self.child.wait(10.0)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.emulator.stop()


def _wait_until(condition: Callable[[], bool], limit_seconds: float, what: str) -> None:
    deadline = time.monotonic() + limit_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _one_at_a_time(case: Case, count: int, limit_seconds: float = 90.0) -> None:
    # A client that falls behind a flood answers late: stop sending after limit_seconds.
    stop_at = time.monotonic() + limit_seconds
    for number in range(count):
        if time.monotonic() > stop_at:
            return
        case.send(case.job_ids[0], f"m-{number}", number)
        _wait_until(lambda n=number: case.answered() > n, 60.0, f"answer {number}")
        time.sleep(0.005)


def _one_per_job(case: Case, pace_seconds: float) -> None:
    for number, job_id in enumerate(case.job_ids):
        case.send(job_id, f"m-{number}", number)
        time.sleep(pace_seconds)
    _wait_until(lambda: case.answered() >= len(case.job_ids), 120.0, "every answer")


def measure(name: str, quick: bool, flood_lines_per_second: float) -> dict[str, Any]:
    """Run one case; its latency summary and what was measured."""
    if name == "alone":
        case = Case("alone", QUIET, "sync", 1)
        send = lambda: _one_at_a_time(case, 50 if quick else 300)  # noqa: E731
    elif name == "flood":
        script = dataclasses.replace(FLOOD, lines_per_second=flood_lines_per_second)
        case = Case("flood", script, "sync", 1)
        send = lambda: _one_at_a_time(case, 50 if quick else 300)  # noqa: E731
    elif name == "jobs":
        case = Case("jobs", WAITING, "async", 200 if quick else 1000)
        send = lambda: _one_per_job(case, 0.004)  # noqa: E731
    else:  # jobs_logging: the same jobs, each writing 2 run-log lines a second
        case = Case("jobs_logging", QUIET, "async", 200 if quick else 1000)
        send = lambda: _one_per_job(case, 0.004)  # noqa: E731
    try:
        case.start_client()
        if name == "flood":
            time.sleep(1.0)  # the flood is under way before the first callback
        started = time.monotonic()
        send()
        elapsed = time.monotonic() - started
        summary = latency_summary(case.latencies())
        summary["jobs"] = len(case.job_ids)
        summary["seconds"] = round(elapsed, 2)
        if name == "flood":
            lines = sum(len(case.emulator.run_log(job_id)) for job_id in case.job_ids)
            summary["flood_lines_sent"] = lines
            summary["flood_lines_per_second"] = flood_lines_per_second
        # 1 unless the socket was lost (a client too slow for the flood is cut off).
        summary["sockets_opened"] = len(case.emulator.hub.record.of_kind("ws_open"))
        return summary
    finally:
        case.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the cases, print one line per case."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "client":
        options = json.loads(argv[1])
        _client(options["mode"], options["base_url"], options["job_ids"])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument(
        "--only", default="alone,flood,jobs,jobs_logging", help="comma-separated cases"
    )
    parser.add_argument(
        "--flood-lines-per-second",
        type=float,
        default=FLOOD.lines_per_second,
        help="how fast the flood case writes its run log",
    )
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    for name in args.only.split(","):
        summary = measure(name, args.quick, args.flood_lines_per_second)
        p99 = summary.get("p99_ms", float("nan"))
        status = "meets" if p99 <= TARGET_P99_MS else "misses"
        print(f"{name:12} {json.dumps(summary)}  -> p99 {status} the {TARGET_P99_MS:g} ms target")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
