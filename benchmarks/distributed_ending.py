"""Where a deferred task ends, and what it costs the workers: three ways of running deferrable
tasks, one batch each, in one run on the distributed bed (``benchmarks/distributed.py --groups
ending``).

The modes, each a DAG of ``--ending-jobs`` deferrable tasks:

* ``worker_resume`` (the "before"): ``resume_on_worker=True`` (where the operator has no such
  argument, its default: the worker resume is then the only path). A local payload folder, so
  the task starts on a worker whatever the operator could do without one.
* ``trigger_end``: the operator's default, the same local payload: starts on a worker, the
  trigger ends the task.
* ``trigger_start``: the default with no payload: where the operator sets ``start_from_trigger``
  the task starts in the triggerer.

A mode this code cannot run is reported as ``skipped`` with the reason (an operator without
``resume_on_worker`` has only the "before"; one that never sets ``start_from_trigger`` cannot
start in the triggerer).

Every job of a batch is held ``QUEUED`` by the emulator (its script's ``hold``) until every task of
the batch is deferred and its trigger subscribed the job; then the gate opens and the jobs end
within milliseconds of each other. So each figure is about ending, with every end competing for
the same worker slots (the bed has 2 Celery workers of 4 slots each), not about starting.

* **End latency**: per task, from its job's ``COMPLETED`` (the emulator's record, this process's
  ``time.monotonic()`` mapped to wall time) to the task instance's ``end_date`` (REST API); and,
  to split it, to the last record of the task's trigger log streams (the trigger saw the end,
  did what the end needs and yielded).
* **Worker-slot seconds per job**: for each task instance, the sum of the run times of the Celery
  tasks that ran it (the first start, each resume), by Celery's own count in the workers' output
  (``Task execute_workload[<id>] succeeded in <s>s``, joined to the task instance by the workload
  record ``[<id>] Executing workload in Celery: ...TaskInstance(id=UUID('<ti id>')...``). Why that
  source: it is exactly the time a pool slot was taken, start-up and supervisor included, and it
  counts every worker run of a try. The metadata DB has no such thing: a task instance's
  ``start_date``/``duration`` span its deferral, its try history keeps whole tries only, and the
  task log's records start after the supervisor's start-up and say nothing of Celery's own work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import time
from pathlib import Path

from distributed_bed import Bed, jobs_of, unfinished_worker_runs, wait_for, worker_runs

from airflow_insight.emulator import Emulator, JobScript
from benchmarks.harness import Figure, latency_summary, percentile

#: Held until the batch is deferred, then the whole run log at once and the end.
ENDING = JobScript(name="bench-ending", queued_seconds=0.5, log_lines=20, lines_per_second=0.0)
#: The end-latency target (p99, seconds) on the loaded 2-core bed.
TARGET_P99_SECONDS = 1.0
PAYLOAD_FILE = "input.txt"


@dataclasses.dataclass(frozen=True)
class Mode:
    """One way of running the batch's deferrable tasks."""

    key: str
    title: str
    #: The operator's keyword arguments, as Python source for the DAG file.
    arguments: str
    #: Why this code cannot run the mode (None: it can).
    skipped: str | None = None

    @property
    def dag_id(self) -> str:
        """The mode's DAG (its jobs' ids start with it)."""
        return f"bench_end_{self.key}"


def modes(payload: Path) -> list[Mode]:
    """The three modes, each marked skipped where this code lacks what it needs."""
    from airflow_insight.operators.insight import InsightJobOperator

    has_flag = "resume_on_worker" in inspect.signature(InsightJobOperator.__init__).parameters
    asks = "start_in_triggerer" in inspect.signature(InsightJobOperator.__init__).parameters
    probe = InsightJobOperator(
        task_id="probe", deferrable=True, **({"start_in_triggerer": True} if asks else {})
    )
    starts_in_triggerer = bool(getattr(probe, "start_from_trigger", False))
    local = f"payload={str(payload)!r}"
    no_flag = "the operator has no resume_on_worker argument: the worker resume is its only path"
    return [
        Mode(
            "worker_resume",
            "resume on a worker (before)",
            f"{local}, resume_on_worker=True" if has_flag else local,
        ),
        Mode("trigger_end", "end in the triggerer", local, None if has_flag else no_flag),
        Mode(
            "trigger_start",
            "start and end in the triggerer",
            "start_in_triggerer=True" if asks else "",
            None
            if starts_in_triggerer
            else "the operator does not set start_from_trigger for a task without a payload",
        ),
    ]


def dag_source(chosen: list[Mode], jobs: int) -> str:
    """A DAG file with one DAG per mode, ``jobs`` deferrable tasks each."""
    entries = ", ".join(f"({m.dag_id!r}, dict({m.arguments}))" for m in chosen)
    return f"""
import datetime
from airflow.sdk import dag
from airflow_insight.operators.insight import InsightJobOperator

def _build(dag_id, arguments):
    @dag(dag_id=dag_id, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False,
         max_active_tasks=1000, default_args={{"retries": 2,
         "retry_delay": datetime.timedelta(seconds=3)}})
    def _dag():
        for n in range({jobs}):
            InsightJobOperator(task_id=f"solve_{{n:03d}}", deferrable=True,
                               execution_timeout=datetime.timedelta(hours=1), **arguments)
    return _dag()

for dag_id, arguments in ({entries},):
    globals()[dag_id] = _build(dag_id, arguments)
"""


def prepare(root: Path, emulator: Emulator, jobs: int) -> tuple[list[Mode], str]:
    """Write the payload folder, hold each mode's jobs behind its gate; the modes and the DAG
    file's source."""
    payload = root / "payload"
    payload.mkdir()
    (payload / PAYLOAD_FILE).write_text("held, then ended together\n")
    chosen = modes(payload)
    for mode in chosen:
        emulator.add_script(f"{mode.dag_id}.*", dataclasses.replace(ENDING, hold=mode.key))
    return chosen, dag_source([m for m in chosen if m.skipped is None], jobs)


def _wall(monotonic_at: float) -> float:
    return monotonic_at + (time.time() - time.monotonic())


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _last_trigger_record(bed: Bed, dag_id: str, run_id: str, task_id: str) -> float | None:
    """When the task's trigger logged last (epoch seconds): it saw the end and yielded."""
    times = [
        at
        for name, records in bed.timed_streams(dag_id, run_id, task_id).items()
        if ".log.trigger." in name
        for at, _ in records
        if at is not None
    ]
    return max(times, default=None)


def _held_and_deferred(bed: Bed, mode: Mode, run_id: str, jobs: int) -> bool:
    states = bed.states(mode.dag_id, run_id)
    if len(states) < jobs or set(states.values()) != {"deferred"}:
        return False
    subscribed = {e.compute_job_id for e in bed.emulator.record.of_kind("subscribe")}
    return all(any(job in subscribed for job in jobs_of(bed, mode.dag_id, task)) for task in states)


def run_mode(bed: Bed, mode: Mode, jobs: int) -> list[Figure]:
    """One batch: start it, wait until every job is held and followed, end them together."""
    how = (
        f"{jobs} deferrable tasks ({mode.title}) on 2 triggerers and 2 Celery workers (4 slots"
        " each); their jobs held QUEUED until every task was deferred and subscribed, then all"
        " ended within milliseconds"
    )
    if mode.skipped is not None:
        return [
            Figure(
                f"distributed_end_{mode.key}_{part}",
                title,
                how,
                "-",
                status="skipped",
                note=mode.skipped,
            )
            for part, title in (("latency", "End latency"), ("worker_slots", "Worker slots"))
        ]
    started = time.monotonic()
    run_id = bed.trigger_run(mode.dag_id)
    wait_for(
        f"the {mode.key} batch to be deferred and followed",
        lambda: _held_and_deferred(bed, mode, run_id, jobs),
        3600,
        2,
    )
    deferred_after = time.monotonic() - started
    bed.emulator.open_gate(mode.key)
    opened = time.time()
    states = bed.wait_until_ended(mode.dag_id, run_id, 3600)
    ti_ids = {ti["id"] for ti in bed.task_instances(mode.dag_id, run_id).values()}
    wait_for("the workers' runs to end", lambda: not unfinished_worker_runs(bed, ti_ids), 300, 1)
    return _figures(bed, mode, run_id, how, deferred_after, opened, states)


def _figures(
    bed: Bed,
    mode: Mode,
    run_id: str,
    how: str,
    deferred_after: float,
    opened: float,
    states: dict[str, str | None],
) -> list[Figure]:
    completed = {
        e.compute_job_id: _wall(e.at)
        for e in bed.emulator.record.of_kind("job_status")
        if e.data.get("status") == "COMPLETED"
    }
    runs = worker_runs(bed)
    latencies: list[float] = []
    to_trigger: list[float] = []
    slots: list[float] = []
    run_counts: list[int] = []
    last_end = opened
    for task, ti in bed.task_instances(mode.dag_id, run_id).items():
        job = jobs_of(bed, mode.dag_id, task)[-1]
        if ti["state"] != "success" or job not in completed:
            continue
        end = _epoch(ti["end_date"])
        last_end = max(last_end, end)
        latencies.append(end - completed[job])
        trigger_end = _last_trigger_record(bed, mode.dag_id, run_id, task)
        if trigger_end is not None:
            to_trigger.append(max(0.0, trigger_end - completed[job]))
        slots.append(sum(runs.get(ti["id"], [])))
        run_counts.append(len(runs.get(ti["id"], [])))
    succeeded = sum(1 for state in states.values() if state == "success")
    latency = latency_summary(latencies)
    p99_ok = bool(latencies) and latency["p99_ms"] <= TARGET_P99_SECONDS * 1000
    zero_target = mode.key == "trigger_start"
    return [
        Figure(
            f"distributed_end_{mode.key}_latency",
            f"Terminal status -> task end_date, {mode.title}",
            how,
            f"p99 <= {TARGET_P99_SECONDS:.0f} s",
            {
                **latency,
                **{
                    f"trigger_last_record_{key}": value
                    for key, value in latency_summary(to_trigger).items()
                    if key in ("p50_ms", "p99_ms")
                },
                "succeeded": succeeded,
                "batch_deferred_s": round(deferred_after, 1),
                "gate_to_last_end_s": round(last_end - opened, 1),
            },
            "pass" if p99_ok else "fail",
        ),
        Figure(
            f"distributed_end_{mode.key}_worker_slots",
            f"Worker-slot seconds per deferred job, {mode.title}",
            how + "; per task instance the sum of its Celery tasks' run times (workers' output)",
            "0 s" if zero_target else "none (for comparison)",
            {
                "n": len(slots),
                "worker_slot_s_mean": round(sum(slots) / len(slots), 2) if slots else float("nan"),
                "p50_s": round(percentile(slots, 0.5), 2),
                "max_s": round(max(slots), 2) if slots else float("nan"),
                "worker_runs_per_job": round(sum(run_counts) / len(run_counts), 2)
                if run_counts
                else float("nan"),
            },
            _slot_status(slots, zero_target, runs),
            "" if runs else _NO_RUNS,
        ),
    ]


_NO_RUNS = "no worker run found in the workers' output: its records did not match (see worker_runs)"


def _slot_status(slots: list[float], zero_target: bool, runs: dict[str, list[float]]) -> str:
    """``error`` when no worker run of the whole bed was parsed (a zero would then mean nothing),
    else the 0 s verdict for tasks that start in the triggerer, else ``info``."""
    if not runs:
        return "error"
    if not zero_target:
        return "info"
    return "pass" if slots and max(slots) == 0 else "fail"


def ending(bed: Bed, chosen: list[Mode], jobs: int) -> list[Figure]:
    """Every mode's batch, one after the other on the same bed."""
    figures: list[Figure] = []
    for mode in chosen:
        if mode.skipped is not None:
            print(f"ending: mode {mode.key} skipped: {mode.skipped}", flush=True)
        figures += run_mode(bed, mode, jobs)
    return figures
