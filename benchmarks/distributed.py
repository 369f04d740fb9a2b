"""Deferred jobs on the distributed test bed: end latency, sockets, CPU and RSS per triggerer, and
the takeover time after a triggerer is SIGKILLed.

Run on demand (not part of the test suite; needs Debian's ``postgresql`` and ``redis-server``)::

    .venv/bin/python benchmarks/distributed.py                 # 500 jobs, ~15-25 min on 2 cores
    .venv/bin/python benchmarks/distributed.py --jobs 100 --json dist.json
    .venv/bin/python benchmarks/distributed.py --groups ending --ending-jobs 60   # ~10 min

It starts the bed of ``tests/distributed`` (Postgres, Redis, api-server, scheduler, dag-processor,
two triggerers, two Celery workers; the emulator in this process) with a DAGs folder of its own:

* **fan-out:** one DAG run of ``--jobs`` deferrable tasks. *End latency* is taken per job from the
  emulator's terminal status (its record, ``time.monotonic()`` mapped to wall time) to (a) the last
  record of the task's trigger log stream (the trigger saw the end and yielded) and (b) the task
  instance's ``end_date`` (the worker ran ``execute_complete``: includes waiting for a worker
  slot). *Sockets per triggerer* come from the emulator's record (which socket subscribed which
  job; which triggerer followed it from the names of the trigger log streams). *CPU* is each
  triggerer's process tree's CPU time over the run divided by the run's wall time (100 % = one
  core); *RSS* the peak of the tree's summed RSS, sampled every second.
* **takeover:** 20 deferred jobs of 1,200 lines over 60 s; once they stream, the triggerer
  holding most of them is SIGKILLed (its whole tree). Reported: seconds from the kill until every
  moved trigger is assigned to the other triggerer (metadata DB), and until the first run-log line
  of each moved job appears in its new trigger stream.

* **ending:** where a deferred task ends and the worker-slot seconds it costs, in three modes
  (resume on a worker, end in the triggerer, start in the triggerer), a batch of jobs that end
  together each; see ``benchmarks/distributed_ending.py``.

Both clocks are this machine's; other load on it shows in every figure (the load average is
printed). Prints a table and optionally writes the figures as JSON (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "distributed"))

from distributed_bed import (  # noqa: E402
    LONG,
    TRIGGERER_HEALTH_CHECK_THRESHOLD_SECONDS,
    Bed,
    jobs_of,
    socket_use,
    started_bed,
    wait_for,
)

from airflow_insight.emulator import Emulator, EmulatorConfig, JobScript  # noqa: E402
from benchmarks import distributed_ending  # noqa: E402
from benchmarks.harness import Figure, format_table, latency_summary  # noqa: E402

#: Short jobs, so that the run measures following and ending, not waiting.
FANOUT = JobScript(
    name="bench-fanout", queued_seconds=5.0, log_lines=100, lines_per_second=5.0, batch_size=5
)
TAKEOVER_JOBS = 20
GROUPS = ("ending", "fanout", "takeover")

DAG_FILE = """
import datetime
from airflow.sdk import dag
from airflow_insight.operators.insight import InsightJobOperator

for dag_id, count in (("bench_fanout", {jobs}), ("bench_takeover", {takeover})):
    @dag(dag_id=dag_id, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False,
         max_active_tasks=1000, default_args={{"retries": 2,
         "retry_delay": datetime.timedelta(seconds=3)}})
    def _dag():
        for n in range(count):
            InsightJobOperator(task_id=f"solve_{{n:03d}}", deferrable=True,
                               execution_timeout=datetime.timedelta(hours=1))
    globals()[dag_id] = _dag()
"""


def _tree(pid: int) -> list[psutil.Process]:
    try:
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_cpu(pid: int) -> float:
    total = 0.0
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _tree_rss_mb(pid: int) -> float:
    total = 0
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 2**20


@contextlib.contextmanager
def _peak_rss(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    peaks = dict.fromkeys(pids, 0.0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            for name, pid in pids.items():
                peaks[name] = max(peaks[name], _tree_rss_mb(pid))

    thread = threading.Thread(target=sample, name="peak-rss", daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join(5)


def _wall(monotonic_at: float) -> float:
    """A ``time.monotonic()`` reading of this process as epoch seconds."""
    return monotonic_at + (time.time() - time.monotonic())


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _last_trigger_record(bed: Bed, dag_id: str, run_id: str, task_id: str) -> float | None:
    folder = bed.log_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    last: float | None = None
    for path in folder.glob("attempt=*.log.trigger.*"):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                stamp = _epoch(json.loads(line)["timestamp"])
                last = stamp if last is None else max(last, stamp)
    return last


def fanout(bed: Bed, jobs: int) -> list[Figure]:
    """The fan-out run; its figures."""
    dag_id = "bench_fanout"
    triggerers = {name: bed.processes[name].pid for name in ("triggerer-1", "triggerer-2")}
    cpu_before = {name: _tree_cpu(pid) for name, pid in triggerers.items()}
    started = time.monotonic()
    with _peak_rss(triggerers) as peaks:
        run_id = bed.trigger_run(dag_id)
        states = bed.wait_until_ended(dag_id, run_id, 4 * 3600)
    elapsed = time.monotonic() - started
    cpu = {
        name: round(100.0 * (_tree_cpu(pid) - cpu_before[name]) / elapsed, 1)
        for name, pid in triggerers.items()
    }
    tis = bed.task_instances(dag_id, run_id)
    ended = {
        e.compute_job_id: _wall(e.at)
        for e in bed.emulator.record.of_kind("job_status")
        if e.data.get("status") == "COMPLETED"
    }
    to_trigger, to_task = [], []
    for task, ti in tis.items():
        job = jobs_of(bed, dag_id, task)[-1]
        if job not in ended or ti["state"] != "success":
            continue
        trigger_end = _last_trigger_record(bed, dag_id, run_id, task)
        if trigger_end is not None:
            to_trigger.append(max(0.0, trigger_end - ended[job]))
        to_task.append(_epoch(ti["end_date"]) - ended[job])
    use = socket_use(bed, dag_id, run_id, list(tis))
    succeeded = sum(1 for state in states.values() if state == "success")
    how = (
        f"{jobs} deferrable tasks in one DAG run on 2 triggerers and 2 Celery workers (4 slots"
        f" each); jobs QUEUED {FANOUT.queued_seconds:.0f} s then {FANOUT.log_lines} lines over"
        f" {FANOUT.log_lines / FANOUT.lines_per_second:.0f} s"
    )
    return [
        Figure(
            "distributed_end_latency_trigger",
            "End latency: terminal status -> trigger's last record",
            how,
            "none (no target was set for this figure)",
            {**latency_summary(to_trigger), "succeeded": succeeded, "run_seconds": round(elapsed)},
        ),
        Figure(
            "distributed_end_latency_task",
            "End latency: terminal status -> task instance end_date",
            how + "; includes waiting for a worker slot to run execute_complete",
            "none",
            latency_summary(to_task),
        ),
        Figure(
            "distributed_sockets_per_triggerer",
            "Progress sockets per triggerer",
            "emulator record: sockets that subscribed the jobs each triggerer followed",
            "1 open at a time per triggerer",
            {
                f"triggerer_{t}_{key}": value
                for t, u in sorted(use.items())
                for key, value in (
                    ("jobs", len(u.jobs)),
                    ("sockets", len(u.sockets)),
                    ("most_open", u.most_open),
                )
            },
            "pass" if use and all(u.most_open == 1 for u in use.values()) else "fail",
        ),
        Figure(
            "distributed_triggerer_resources",
            "CPU and peak RSS per triggerer",
            "process tree CPU time over the run / wall time (100 = one core); peak summed RSS",
            "none",
            {f"{name}_cpu_percent": cpu[name] for name in triggerers}
            | {f"{name}_peak_rss_mb": round(peaks[name], 1) for name in triggerers},
        ),
    ]


def takeover(bed: Bed) -> Figure:
    """SIGKILL the triggerer holding most of 20 streaming jobs; how long until they move."""
    dag_id = "bench_takeover"
    run_id = bed.trigger_run(dag_id)
    tasks = sorted(bed.states(dag_id, run_id))

    def streaming() -> bool:
        owners = bed.trigger_owners(dag_id, run_id)
        return len(owners) == len(tasks) and None not in owners.values()

    wait_for("every takeover job to be deferred and claimed", streaming, 1800, 1)
    time.sleep(5)  # lines flow
    owners = bed.trigger_owners(dag_id, run_id)
    counts: dict[str, int] = {}
    for owner in owners.values():
        assert owner is not None
        counts[owner] = counts.get(owner, 0) + 1
    victim = max(counts, key=lambda name: counts[name])
    moved = [task for task, owner in owners.items() if owner == victim]
    old_streams = {task: set(_stream_names(bed, dag_id, run_id, task)) for task in moved}
    killed_at = time.time()
    bed.processes[victim].crash()

    def reassigned() -> bool:
        now = bed.trigger_owners(dag_id, run_id)
        return all(now.get(task) not in (None, victim) for task in moved)

    wait_for("the triggers to move", reassigned, 600, 0.25)
    moved_after = time.time() - killed_at

    def first_new_lines() -> list[float] | None:
        firsts = []
        for task in moved:
            first = _first_line_in_new_stream(bed, dag_id, run_id, task, old_streams[task])
            if first is None:
                return None
            firsts.append(first - killed_at)
        return firsts

    firsts = wait_for("lines in the new streams", first_new_lines, 600, 0.5)
    bed.restart(victim)
    bed.wait_until_ended(dag_id, run_id, 1800)
    return Figure(
        "distributed_takeover",
        "Takeover after a triggerer SIGKILL",
        f"{TAKEOVER_JOBS} deferred jobs ({LONG.log_lines} lines over"
        f" {LONG.log_lines / LONG.lines_per_second:.0f} s); SIGKILL of the whole tree of the"
        f" triggerer holding {len(moved)} of them; [triggerer] triggerer_health_check_threshold"
        f" = {TRIGGERER_HEALTH_CHECK_THRESHOLD_SECONDS} s",
        "none",
        {
            "moved_jobs": len(moved),
            "reassigned_s": round(moved_after, 1),
            "first_line_p50_s": round(sorted(firsts)[len(firsts) // 2], 1),
            "first_line_max_s": round(max(firsts), 1),
        },
    )


def _stream_names(bed: Bed, dag_id: str, run_id: str, task_id: str) -> list[str]:
    return [name for name in bed.streams(dag_id, run_id, task_id) if ".log.trigger." in name]


def _first_line_in_new_stream(
    bed: Bed, dag_id: str, run_id: str, task_id: str, old: set[str]
) -> float | None:
    folder = bed.log_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    for path in folder.glob("attempt=*.log.trigger.*"):
        if path.name in old:
            continue
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                if ": run-log line " in record["event"]:
                    return _epoch(record["timestamp"])
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; always exits 0 (the figures are a report)."""
    parser = argparse.ArgumentParser(prog="benchmarks/distributed.py", description=__doc__)
    parser.add_argument("--jobs", type=int, default=500, help="deferred jobs in the fan-out")
    parser.add_argument("--json", metavar="PATH", help="write the figures here")
    parser.add_argument(
        "--groups", default=",".join(GROUPS), help=f"comma-separated, of {', '.join(GROUPS)}"
    )
    parser.add_argument("--ending-jobs", type=int, default=100, help="deferred jobs per mode")
    args = parser.parse_args(argv)
    groups = set(args.groups.split(","))
    if not groups <= set(GROUPS):
        parser.error(f"unknown groups: {sorted(groups - set(GROUPS))}")
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    emulator = Emulator(
        EmulatorConfig(record_limit=None, record_messages=False, default_script=LONG)
    ).start()
    emulator.add_script("bench_fanout.*", FANOUT)
    root = Path(tempfile.mkdtemp(prefix="insight-distributed-bench-"))
    dags = root / "dags"
    dags.mkdir()
    (root / "bed").mkdir()
    (dags / "bench_dags.py").write_text(DAG_FILE.format(jobs=args.jobs, takeover=TAKEOVER_JOBS))
    modes, ending_dags = distributed_ending.prepare(root, emulator, args.ending_jobs)
    (dags / "bench_ending_dags.py").write_text(ending_dags)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    figures: list[Figure] = []
    try:
        with started_bed(emulator, root / "bed", dags, triggerer_capacity=1000) as bed:
            if "ending" in groups:
                figures += distributed_ending.ending(bed, modes, args.ending_jobs)
            if "fanout" in groups:
                figures += fanout(bed, args.jobs)
            if "takeover" in groups:
                figures.append(takeover(bed))
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(format_table(figures))
    for figure in figures:
        print(f"{figure.id}: {figure.values}")
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    print(f"\n{elapsed:.0f} s on {os.cpu_count()} CPUs (load {load_at_start} -> {load_at_end})")
    if args.json:
        report: dict[str, Any] = {
            "duration_seconds": round(elapsed, 1),
            "load_average": [load_at_start, load_at_end],
            "figures": [figure.to_dict() for figure in figures],
        }
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
