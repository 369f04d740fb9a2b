"""Memory bounds: a deferred flood the task log cannot keep up with, and RunLog per job.

Run on demand; prints the figures (and writes them as JSON with ``--json``)::

    .venv/bin/python -m benchmarks.memory_bounds                    # this checkout
    .venv/bin/python -m benchmarks.memory_bounds --against main     # the same, for a git ref

Two figures, each measured in a child process of its own (so that the RSS is the client's
alone; the emulator runs in a third process, :mod:`benchmarks.emulator_proc`):

* **deferred flood**: one asyncio loop follows ``--jobs`` jobs on one shared socket through
  :class:`~airflow_insight.transport.socket_hub.SocketHub`, as the triggerer does; each job
  prints ``--lines`` run-log lines in batches of ``--batch`` as fast as the emulator can send
  them. Each job's consumer formats every line as the task log does and yields every 200 lines,
  as the trigger does, and it pauses ``--sink-pause`` seconds per 200 lines so that the sink
  cannot keep up. Figures: RSS before the jobs were submitted, the peak during the flood (sampled
  every 20 ms), lines forwarded live, and lines left to the resume (read over REST).
* **RunLog per job**: ``--runlogs`` :class:`~airflow_insight.protocol.runlog.RunLog` objects,
  each fed ``--runlog-lines`` fresh lines of 80 characters in batches of 100 (a long follow);
  the forwarded events are dropped, as a sink does. Figure: bytes kept per job (``tracemalloc``)
  and the whole for all of them.

``--against REF`` exports ``airflow_insight`` at that git ref into a temporary folder and runs
the measured children against it (the emulator stays this checkout's), to give the figures
before a change. Nothing is asserted: the figures are data.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The trigger's pace (airflow_insight.triggers.insight.LINES_PER_YIELD).
LINES_PER_YIELD = 200
LINE_CHARS = 80


# --------------------------------------------------------------------------- children


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRss:
    """Samples this process's RSS every 20 ms in a thread; the peak since :meth:`start`."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> _PeakRss:
        self.peak = _rss_bytes()
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())


def _flood_child(options: dict[str, Any]) -> dict[str, Any]:
    import airflow_insight
    from airflow_insight.protocol import events as ev
    from airflow_insight.settings import ConnectionSettings
    from airflow_insight.transport.rest import InsightRestClient
    from airflow_insight.transport.socket_hub import SocketHub

    settings = ConnectionSettings(options["base_url"], options["client_id"], options["secret"])
    jobs = [f"flood-{n}" for n in range(options["jobs"])]
    formatter = logging.Formatter("[%(asctime)s] {%(filename)s:%(lineno)d} %(message)s")
    pause = float(options["sink_pause"])

    async def consume(watch: Any) -> tuple[int, int | None]:
        live, gap = 0, None
        while True:
            event = await watch.next_event()
            if isinstance(event, ev.RunLogGap) and gap is None:
                gap = event.first_line
            if isinstance(event, ev.RunLogLines):
                for count, line in enumerate(event.lines, start=1):
                    formatter.format(logging.makeLogRecord({"msg": line}))
                    if count % LINES_PER_YIELD == 0:
                        await asyncio.sleep(pause)  # A task log slower than the server.
                live += len(event.lines)
            if isinstance(event, ev.JobFinished | ev.FollowFailed):
                watch.close()
                return live, gap

    async def main() -> dict[str, Any]:
        gc.collect()
        sampler = _PeakRss().start()
        base = sampler.peak
        started = time.monotonic()
        # Submitted first, then followed, as the worker submits before deferring.
        with InsightRestClient(settings) as rest:
            for job in jobs:
                rest.submit_job({"id": job, "computeJobType": "SOLVER", "runLogMessages": True})
        hub = SocketHub.for_running_loop()
        watches = [hub.watch("bench", settings, job) for job in jobs]
        results = await asyncio.gather(*(consume(watch) for watch in watches))
        seconds = time.monotonic() - started
        peak = sampler.stop()
        live = sum(r[0] for r in results)
        return {
            "rss_start_mb": base / 2**20,
            "rss_peak_mb": peak / 2**20,
            "rss_growth_mb": (peak - base) / 2**20,
            "lines_live": live,
            "lines_left_to_resume": options["jobs"] * options["lines"] - live,
            "jobs_stopped_at_a_gap": sum(1 for r in results if r[1] is not None),
            "seconds": seconds,
            "client_source": str(Path(airflow_insight.__file__).parents[1]),
        }

    return asyncio.run(main())


def _runlog_child(options: dict[str, Any]) -> dict[str, Any]:
    from airflow_insight.protocol.runlog import RunLog

    count, lines = options["runlogs"], options["runlog_lines"]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    logs = []
    for n in range(count):
        log = RunLog(f"job-{n}")
        for start in range(0, lines, 100):
            batch = [f"{i:08d} " + "x" * (LINE_CHARS - 9) for i in range(start, start + 100)]
            log.accept(start, batch)
        del batch
        logs.append(log)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "bytes_per_job": kept / count,
        "mb_all_jobs": kept / 2**20,
        "jobs": count,
        "lines_per_job": lines,
    }


# --------------------------------------------------------------------------- parent


def _export(ref: str, into: str) -> str:
    """``airflow_insight`` at ``ref``, extracted under ``into``; the folder to import it from."""
    archive = subprocess.run(
        ["git", "archive", ref, "airflow_insight"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def _run_child(kind: str, options: dict[str, Any], source: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if source is not None:
        # Ahead of the editable install of this checkout (site-packages comes after it).
        env["PYTHONPATH"] = source
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(options)],
        env=env,
        cwd=source or ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _flood(args: argparse.Namespace, source: str | None) -> dict[str, Any]:
    from benchmarks.emulator_proc import CLIENT_ID, CLIENT_SECRET, EmulatorProcess

    script = {
        "name": "flood",
        "queued_seconds": 0.01,
        "log_lines": args.lines,
        "lines_per_second": 200_000.0,
        "batch_size": args.batch,
        "completing_seconds": 0.01,
    }
    with EmulatorProcess(ping_interval_seconds=1.0, pong_timeout_seconds=60.0) as emulator:
        emulator.rule("flood-*", script)
        options = {
            "base_url": emulator.base_url,
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "jobs": args.jobs,
            "lines": args.lines,
            "sink_pause": args.sink_pause,
        }
        return _run_child("flood", options, source)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="git ref whose airflow_insight the children run")
    parser.add_argument("--jobs", type=int, default=8, help="deferred jobs in the flood")
    parser.add_argument("--lines", type=int, default=50_000, help="run-log lines per job")
    parser.add_argument("--batch", type=int, default=1_000, help="lines per RUNLOG_UPDATED")
    parser.add_argument("--sink-pause", type=float, default=0.02, help="seconds per 200 lines")
    parser.add_argument("--runlogs", type=int, default=5_000, help="RunLog objects")
    parser.add_argument("--runlog-lines", type=int, default=1_500, help="lines fed to each")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure both figures and print them; the figures."""
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="insight-bounds-") as folder:
        source = _export(args.against, folder) if args.against else None
        report = {
            "against": args.against or "this checkout",
            "load_average_start": os.getloadavg(),
            "deferred_flood": _flood(args, source),
            "runlog_per_job": _run_child(
                "runlog", {"runlogs": args.runlogs, "runlog_lines": args.runlog_lines}, source
            ),
            "load_average_end": os.getloadavg(),
        }
    for name in ("deferred_flood", "runlog_per_job"):
        figures = report[name]
        print(f"{name} ({report['against']}):")
        for key, value in figures.items():
            shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
            print(f"  {key:24} {shown}")
    print(f"load average: {report['load_average_start']} -> {report['load_average_end']}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child = _flood_child if sys.argv[2] == "flood" else _runlog_child
        print(json.dumps(child(json.loads(sys.argv[3]))))
    else:
        main()
