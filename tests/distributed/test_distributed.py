"""Deploys and crashes on a real distributed Airflow: CeleryExecutor, Postgres, Redis, two
triggerers and two Celery workers, with the emulator as the Insight server.

Each case asserts on the emulator's record (which jobs were submitted, which cancelled, which
socket carried which job) and on every log stream of every attempt of the task (the worker's
``attempt=N.log`` and each triggerer's ``attempt=N.log.trigger.<id>.log``). Run one case with
``pytest tests/distributed -k case2 -s`` (``-s`` prints the figures each case measured; with
``INSIGHT_KEEP_BED=1`` the bed's directory, logs included, is left behind).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
from distributed_bed import (
    LONG,
    LONGER,
    STALL,
    TASK_INSTANCE_HEARTBEAT_TIMEOUT_SECONDS,
    TERMINAL_TI_STATES,
    Bed,
    LineCount,
    Process,
    count_lines,
    jobs_of,
    run_log_lines_in,
    socket_use,
    unfinished_worker_runs,
    wait_for,
    worker_runs,
)

from airflow_insight.emulator import Entry

pytestmark = pytest.mark.timeout(1500)

#: The trigger persists its watermark at most this often per job (about once a second); lines
#: forwarded after the last persist may repeat after a crash.
PERSIST_INTERVAL_SECONDS = 1.0
#: One persist interval of LONG's lines, plus the batch that may straddle the persist.
REPEAT_BOUND = int(LONG.lines_per_second * PERSIST_INTERVAL_SECONDS) + LONG.batch_size
#: What a resumed trigger stream says: where it resumed.
RESUMED = re.compile(r"resum\w*\b.*\bline", re.IGNORECASE)
REATTACHED = re.compile(r"re-?attach", re.IGNORECASE)
RUN_TIMEOUT = 900.0


# ---------------------------------------------------------------------------------- helpers


def deletes_of(bed: Bed, job_ids: list[str]) -> list[Entry]:
    """The DELETE requests (cancellations) the emulator received for these jobs."""
    return [e for e in bed.emulator.record.of_kind("delete") if e.compute_job_id in job_ids]


def only_job(bed: Bed, dag_id: str, task_id: str) -> str:
    """The one job of a task; fails if the server got none or several."""
    jobs = jobs_of(bed, dag_id, task_id)
    assert len(jobs) == 1, f"{dag_id}.{task_id}: {len(jobs)} jobs on the server: {jobs}"
    return jobs[0]


def streaming(bed: Bed, dag_id: str, run_id: str, tasks: list[str], state: str, lines: int) -> bool:
    """Every task is in ``state`` and at least ``lines`` of its job reached its log streams."""
    states = bed.states(dag_id, run_id)
    if any(states.get(task) != state for task in tasks):
        return False
    for task in tasks:
        jobs = jobs_of(bed, dag_id, task)
        if not jobs or sum(count_lines(bed, dag_id, run_id, task, jobs[-1]).total.values()) < lines:
            return False
    return True


def start_deferred_and_blocking(bed: Bed, dag_id: str, lines: int) -> str:
    """Start a run of a DAG with a ``deferred`` and a ``blocking`` task; return its id once both
    jobs stream (``lines`` lines each in the task's logs)."""
    run_id = bed.trigger_run(dag_id)
    wait_for(
        "both jobs to stream",
        lambda: (
            streaming(bed, dag_id, run_id, ["deferred"], "deferred", lines)
            and streaming(bed, dag_id, run_id, ["blocking"], "running", lines)
        ),
        600,
        1,
    )
    return run_id


def statuses_of(bed: Bed, job_id: str) -> list[str]:
    """The statuses the emulator gave a job, in order."""
    return [
        e.data["status"]
        for e in bed.emulator.record.of_kind("job_status")
        if e.compute_job_id == job_id
    ]


def record_summary(bed: Bed, job_id: str) -> str:
    """The emulator's record of one job, as quoted in the closing note."""
    record = bed.emulator.record.entries()
    kinds = Counter(e.kind for e in record if e.compute_job_id == job_id)
    statuses = statuses_of(bed, job_id)
    subscribes = [
        (e.connection_id, e.data.get("lastRunLogLine"))
        for e in record
        if e.kind == "subscribe" and e.compute_job_id == job_id
    ]
    return (
        f"job {job_id}: created {kinds['job_created']}x, DELETE {kinds['delete']}x,"
        f" statuses {' > '.join(dict.fromkeys(statuses))}, subscribes (socket, lastRunLogLine)"
        f" {subscribes}"
    )


def resume_marks(bed: Bed, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """The log records where a stream said it resumed."""
    return [
        f"{name}: {message}"
        for name, messages in bed.streams(dag_id, run_id, task_id).items()
        for message in messages
        if RESUMED.search(message)
    ]


def report(title: str, lines: list[str]) -> None:
    """Print a case's figures (shown with ``-s``)."""
    print(f"\n--- {title} ---")
    for line in lines:
        print(line)


def assert_exactly_once(counts: LineCount, what: str) -> None:
    """Every line of the job in the task's streams once: none lost, none repeated."""
    assert counts.expected > 0, f"{what}: the job wrote no run log"
    assert not counts.missing and counts.repeated == 0, f"{what}: {counts.summary()}"


def assert_each_stream_once(counts: LineCount, what: str) -> None:
    """Nothing lost over all streams, and no stream holds a line twice."""
    assert counts.expected > 0 and not counts.missing, f"{what}: {counts.summary()}"
    for name, per_line in counts.per_stream.items():
        twice = sum(1 for count in per_line.values() if count > 1)
        assert twice == 0, f"{what}: {twice} lines twice within {name}; {counts.summary()}"


def task_worker(bed: Bed, ti: dict[str, Any]) -> Process:
    """The Celery worker whose process tree runs the task instance's process."""
    pid = ti.get("pid")
    for name, process in bed.processes.items():
        if name.startswith("worker") and pid in {p.pid for p in process.tree()}:
            return process
    raise AssertionError(f"no worker runs pid {pid} of {ti['task_id']}")


def wait_moved(bed: Bed, dag_id: str, run_id: str, tasks: list[str], victim: str) -> float:
    """Wait until no trigger of ``tasks`` is held by ``victim``; how long it took."""
    start = time.monotonic()

    def moved() -> bool:
        owners = bed.trigger_owners(dag_id, run_id)
        return all(owners.get(task) not in (None, victim) for task in tasks) or all(
            bed.states(dag_id, run_id).get(task) != "deferred" for task in tasks
        )

    wait_for(f"the triggers of {tasks} to leave {victim}", moved, 180, 0.25)
    return time.monotonic() - start


# ---------------------------------------------------------------------------------- case 1


def test_case1_fifty_deferred_jobs_over_two_triggerers(bed: Bed) -> None:
    """50 deferred jobs: both triggerers follow some, each over at most one socket at a time;
    every job succeeds once and every line reaches its task exactly once."""
    dag_id = "dist_fanout"
    started = time.monotonic()
    run_id = bed.trigger_run(dag_id)
    states = bed.wait_until_ended(dag_id, run_id, RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    assert set(states.values()) == {"success"}, Counter(states.values())

    for task in states:
        job = only_job(bed, dag_id, task)
        assert_exactly_once(count_lines(bed, dag_id, run_id, task, job), f"{task} ({job})")
    assert not deletes_of(bed, [job for task in states for job in jobs_of(bed, dag_id, task)])
    use = socket_use(bed, dag_id, run_id, list(states))
    assert len(use) == 2, f"the jobs were followed by triggerers {sorted(use)}"

    lines = [f"50 jobs ended in {elapsed:.0f} s (trigger to the last task's end)"]
    for triggerer, sockets in sorted(use.items()):
        lines.append(f"triggerer {triggerer}: {sockets.summary()}")
        assert sockets.most_open == 1, f"triggerer {triggerer}: {sockets.summary()}"
    report("case 1: 50 deferred jobs", lines)


@contextlib.contextmanager
def throttled(process: Process, run_seconds: float = 0.01, stop_seconds: float = 0.19) -> Any:
    """Let ``process``'s main process run only ``run_seconds`` in every cycle (SIGSTOP, SIGCONT),
    as a loaded machine or a slow metadata DB would: its loop turns about five times a second."""
    done = threading.Event()

    def cycle() -> None:
        while not done.is_set():
            process.signal_main(signal.SIGSTOP)
            done.wait(stop_seconds)
            process.signal_main(signal.SIGCONT)
            done.wait(run_seconds)

    thread = threading.Thread(target=cycle, name=f"throttle-{process.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        process.signal_main(signal.SIGCONT)


def test_case1b_the_triggerer_reads_its_log_late(bed: Bed) -> None:
    """The triggerer's supervisor falls behind on its log socket while the job writes its run
    log and ends: the trigger fires only once the supervisor has read its records, so every line
    reaches the task once.

    Airflow's triggerer closes a trigger's log stream as soon as it learns the trigger ended and
    sends what it reads afterwards to its own log (``airflow_insight.triggers.log_delivery``).
    The supervisor (not its trigger runner) is throttled to about five loop turns a second, and
    reads 4 KiB of log records per turn; the job's lines fit the log socket's buffer, so the
    runner never waits for it and, without the wait, fires while most of them are unread."""
    dag_id = "dist_log_stall"
    run_id = bed.trigger_run(dag_id)
    job = wait_for(
        "the job to be submitted", lambda: next(iter(jobs_of(bed, dag_id, "solve")), None), 300
    )
    wait_for(
        "the trigger to subscribe",
        lambda: (
            bed.states(dag_id, run_id).get("solve") == "deferred"
            and any(e.compute_job_id == job for e in bed.emulator.record.of_kind("subscribe"))
        ),
        300,
        0.25,
    )
    owner = bed.trigger_owners(dag_id, run_id)["solve"]
    assert owner is not None, "no triggerer holds the trigger"
    # Throttle from 3 s before the job leaves QUEUED: briefly, far from the heartbeat limits.
    created = next(
        e.at for e in bed.emulator.record.of_kind("job_created") if e.compute_job_id == job
    )
    time.sleep(max(0.0, created + STALL.queued_seconds - 3 - time.monotonic()))
    with throttled(bed.processes[owner]):
        assert "EXECUTING" not in statuses_of(bed, job), (
            f"job {job} ran before {owner} was throttled: raise STALL.queued_seconds"
        )
        wait_for("the job to end", lambda: "COMPLETED" in statuses_of(bed, job), 120, 0.25)
        time.sleep(3)  # the trigger runner's loop turns about once a second
    states = bed.wait_until_ended(dag_id, run_id, RUN_TIMEOUT)
    counts = count_lines(bed, dag_id, run_id, "solve", job)
    own_log = bed.processes[owner].log_path.read_text(errors="replace")
    stray = len(run_log_lines_in(own_log, job))
    report(
        "case 1b: the triggerer reads its log late",
        [counts.summary(), f"{stray} of its lines in {owner}'s own log", record_summary(bed, job)],
    )
    assert states == {"solve": "success"}, states
    assert_exactly_once(counts, "solve")
    assert stray == 0, f"{stray} run-log lines in {owner}'s own log"


# ---------------------------------------------------------------------------------- case 2


def test_case2_sigkill_the_following_triggerer(bed: Bed) -> None:
    """SIGKILL (the whole tree) of the triggerer following jobs: the other takes them over, no job
    is cancelled, no line lost; repeats stay within one persist interval and are marked."""
    dag_id, tasks = "dist_kill_triggerer", ["solve_0", "solve_1", "solve_2"]
    started = time.monotonic()
    run_id = bed.trigger_run(dag_id)
    wait_for(
        "the jobs to stream", lambda: streaming(bed, dag_id, run_id, tasks, "deferred", 100), 600, 1
    )
    owners = bed.trigger_owners(dag_id, run_id)
    victim = Counter(owners.values()).most_common(1)[0][0]
    assert victim is not None
    moved = [task for task in tasks if owners[task] == victim]
    bed.processes[victim].crash()
    takeover = wait_moved(bed, dag_id, run_id, moved, victim)
    bed.restart(victim)
    states = bed.wait_until_ended(dag_id, run_id, RUN_TIMEOUT)
    elapsed = time.monotonic() - started

    lines = [f"killed {victim} holding {moved}; triggers moved {takeover:.1f} s later"]
    for task in tasks:
        job = jobs_of(bed, dag_id, task)[0]
        counts = count_lines(bed, dag_id, run_id, task, job)
        lines += [
            f"{task}: {counts.summary()}",
            record_summary(bed, job),
            *resume_marks(bed, dag_id, run_id, task),
        ]
    lines.append(f"case wall time {elapsed:.0f} s")
    report("case 2: SIGKILL the following triggerer", lines)

    assert set(states.values()) == {"success"}, states
    for task in tasks:
        job = only_job(bed, dag_id, task)
        assert not deletes_of(bed, [job]), f"{task}: job {job} was cancelled"
        counts = count_lines(bed, dag_id, run_id, task, job)
        if task not in moved:
            assert_exactly_once(counts, task)
            continue
        assert not counts.missing, f"{task}: {counts.summary()}"
        assert counts.repeated <= REPEAT_BOUND, f"{task}: {counts.summary()} (bound {REPEAT_BOUND})"
        assert resume_marks(bed, dag_id, run_id, task), f"{task}: no stream says where it resumed"


# ---------------------------------------------------------------------------------- case 3


@pytest.mark.parametrize("target", ["main", "group"])
def test_case3_sigterm_a_triggerer_as_a_deploy(bed: Bed, target: str) -> None:
    """SIGTERM to the triggerer's main process, or to its whole process group (dumb-init,
    systemd): the jobs move to the other triggerer; nothing is cancelled, nothing repeats."""
    dag_id, tasks = f"dist_term_triggerer_{target}", ["solve_0", "solve_1"]
    started = time.monotonic()
    run_id = bed.trigger_run(dag_id)
    wait_for(
        "the jobs to stream", lambda: streaming(bed, dag_id, run_id, tasks, "deferred", 100), 600, 1
    )
    owners = bed.trigger_owners(dag_id, run_id)
    victim = owners["solve_0"]
    assert victim is not None
    moved = [task for task in tasks if owners[task] == victim]
    process = bed.processes[victim]
    stopping = time.monotonic()
    (process.signal_main if target == "main" else process.signal_group)(signal.SIGTERM)
    exited = process.wait(120)
    stop_seconds = time.monotonic() - stopping
    if not exited:
        process.stop()
    takeover = wait_moved(bed, dag_id, run_id, moved, victim)
    bed.restart(victim)
    states = bed.wait_until_ended(dag_id, run_id, RUN_TIMEOUT)

    lines = [
        f"SIGTERM to {victim}'s {target} process(es) holding {moved}: exited"
        f" {f'in {stop_seconds:.1f} s' if exited else 'NOT within 120 s'}; triggers moved"
        f" {takeover:.1f} s after the exit",
        *(line for line in process.output(100000).splitlines() if "on_kill" in line),
    ]
    for task in tasks:
        for job in jobs_of(bed, dag_id, task):
            lines += [
                f"{task}: {count_lines(bed, dag_id, run_id, task, job).summary()}",
                record_summary(bed, job),
            ]
    lines.append(f"case wall time {time.monotonic() - started:.0f} s")
    report(f"case 3: SIGTERM to the triggerer's {target} process", lines)

    assert exited, f"{victim} did not stop within 120 s of SIGTERM"
    assert set(states.values()) == {"success"}, states
    for task in tasks:
        job = only_job(bed, dag_id, task)
        assert not deletes_of(bed, [job]), f"{task}: job {job} was cancelled by the deploy"
        assert_exactly_once(count_lines(bed, dag_id, run_id, task, job), task)


# ---------------------------------------------------------------------------------- cases 4, 5


def _blocking_worker_case(bed: Bed, dag_id: str, stop: str) -> None:
    started = time.monotonic()
    run_id = bed.trigger_run(dag_id)
    wait_for(
        "the job to stream",
        lambda: streaming(bed, dag_id, run_id, ["solve"], "running", 100),
        600,
        1,
    )
    ti = bed.task_instances(dag_id, run_id)["solve"]
    worker = task_worker(bed, ti)
    tree = worker.tree()
    signalled = time.time()
    if stop == "sigterm":
        # A deploy: SIGTERM (Celery's warm shutdown waits for running tasks), then, as the grace
        # period runs out, SIGQUIT (cold shutdown), then SIGKILL for whatever is left.
        worker.signal_main(signal.SIGTERM)
        time.sleep(5)
        worker.signal_main(signal.SIGQUIT)
        worker.wait(30)
    for process in tree:  # the grace period's end, or the crash itself
        with contextlib.suppress(Exception):
            process.kill()
    worker.wait(30)
    bed.restart(worker.name)
    states = bed.wait_until_ended(dag_id, run_id, RUN_TIMEOUT)
    elapsed = time.monotonic() - started

    jobs = jobs_of(bed, dag_id, "solve")
    streams = bed.streams(dag_id, run_id, "solve")
    lines = [f"{stop} to {worker.name} running try {ti['try_number']} (pid {ti['pid']})"]
    for job in jobs:
        lines += [
            count_lines(bed, dag_id, run_id, "solve", job).summary(),
            record_summary(bed, job),
        ]
    for name, records in bed.timed_streams(dag_id, run_id, "solve").items():
        lines += [
            f"{name}: {message} ({at - signalled:.1f} s after the signal)"
            for at, message in records
            if at is not None and REATTACHED.search(message)
        ]
    lines.append(f"case wall time {elapsed:.0f} s")
    report(f"{dag_id}: {stop} the worker", lines)

    assert states == {"solve": "success"}, states
    job = only_job(bed, dag_id, "solve")
    assert not deletes_of(bed, [job]), f"job {job} was cancelled by the worker's {stop}"
    later = [
        m
        for name, messages in streams.items()
        if not name.startswith("attempt=1.")
        for m in messages
    ]
    assert later, f"no retry ran: streams {sorted(streams)}"
    assert any(REATTACHED.search(m) for m in later), "the retry did not re-attach to the job"
    assert_each_stream_once(count_lines(bed, dag_id, run_id, "solve", job), "solve")


def test_case4_sigterm_the_worker_running_a_blocking_task(bed: Bed) -> None:
    """A deploy stops the Celery worker (warm, then cold shutdown): the job is not cancelled, the
    retry re-attaches to it, the server holds one job."""
    _blocking_worker_case(bed, "dist_term_worker", "sigterm")


def test_case5_sigkill_the_worker_running_a_blocking_task(bed: Bed) -> None:
    """The worker dies (SIGKILL of its whole tree): Airflow fails the lost task after its heartbeat
    timeout and the retry re-attaches to the still-running job."""
    assert LONGER.log_lines / LONGER.lines_per_second > 2 * TASK_INSTANCE_HEARTBEAT_TIMEOUT_SECONDS
    _blocking_worker_case(bed, "dist_kill_worker", "sigkill")


# ---------------------------------------------------------------------------------- case 6


def test_case6_user_marks_tasks_failed(bed: Bed) -> None:
    """A user marks a deferred task and a running blocking task failed: both jobs are cancelled."""
    dag_id = "dist_mark_failed"
    started = time.monotonic()
    run_id = start_deferred_and_blocking(bed, dag_id, 40)
    marked = time.monotonic()
    for task in ("deferred", "blocking"):
        bed.mark_failed(dag_id, run_id, task)
    jobs = {task: only_job(bed, dag_id, task) for task in ("deferred", "blocking")}
    wait_for(
        "both cancellations",
        lambda: len({e.compute_job_id for e in deletes_of(bed, list(jobs.values()))}) == 2,
        120,
    )
    cancelled_after = time.monotonic() - marked
    for job in jobs.values():
        bed.emulator.wait_for_status(job, {"CANCELLED"}, timeout_seconds=60)
    states = bed.wait_until_ended(dag_id, run_id, 120)
    report(
        "case 6: marked failed",
        [f"both jobs cancelled within {cancelled_after:.1f} s of the PATCH"]
        + [record_summary(bed, job) for job in jobs.values()]
        + [f"case wall time {time.monotonic() - started:.0f} s"],
    )
    assert states == {"deferred": "failed", "blocking": "failed"}, states
    for task in jobs:
        only_job(bed, dag_id, task)  # no retry submitted another


# ---------------------------------------------------------------------------------- case 7


def test_case7_restart_the_scheduler_mid_run(bed: Bed) -> None:
    """The scheduler restarts while a deferred and a blocking job run: nothing lost, nothing
    cancelled, nothing repeated."""
    dag_id = "dist_restart_scheduler"
    started = time.monotonic()
    run_id = start_deferred_and_blocking(bed, dag_id, 100)
    scheduler = bed.processes["scheduler"]
    scheduler.signal_group(signal.SIGTERM)
    assert scheduler.wait(120), "the scheduler did not stop within 120 s of SIGTERM"
    bed.restart("scheduler")
    states = bed.wait_until_ended(dag_id, run_id, RUN_TIMEOUT)
    lines = []
    for task in ("deferred", "blocking"):
        for job in jobs_of(bed, dag_id, task):
            lines += [f"{task}: {count_lines(bed, dag_id, run_id, task, job).summary()}"]
            lines += [record_summary(bed, job)]
    report(
        "case 7: scheduler restarted",
        [*lines, f"case wall time {time.monotonic() - started:.0f} s"],
    )
    assert states == {"deferred": "success", "blocking": "success"}, states
    for task in ("deferred", "blocking"):
        job = only_job(bed, dag_id, task)
        assert not deletes_of(bed, [job]), f"{task}: job {job} was cancelled"
        assert_exactly_once(count_lines(bed, dag_id, run_id, task, job), task)


# ---------------------------------------------------------------------------------- case 8


def mapped_instances(bed: Bed, dag_id: str, run_id: str) -> dict[int, tuple[Any, ...]]:
    """``{map index: (state, end_date, task instance id)}`` of a run's mapped task instances."""
    rows = bed.postgres.query(
        "SELECT map_index, state, end_date, id FROM task_instance"
        " WHERE dag_id = %s AND run_id = %s AND map_index >= 0",
        dag_id,
        run_id,
    )
    return {row[0]: row[1:] for row in rows}


def test_case8_a_mapped_task_whose_jobs_end_together(bed: Bed) -> None:
    """Six maps of a deferrable task, their jobs held until every map is deferred and followed,
    then ended within milliseconds: every map succeeds with its job's result dict as XCom."""
    dag_id, maps = "dist_end_together", 6
    run_id = bed.trigger_run(dag_id)

    def held() -> bool:
        instances = mapped_instances(bed, dag_id, run_id)
        jobs = set(jobs_of(bed, dag_id, "solve"))
        subscribed = {e.compute_job_id for e in bed.emulator.record.of_kind("subscribe")}
        deferred = [i for i in instances.values() if i[0] == "deferred"]
        return len(deferred) == maps and len(jobs) == maps and jobs <= subscribed

    wait_for("every map to be deferred and its job followed", held, RUN_TIMEOUT, 1)
    bed.emulator.open_gate("dist_end_together")
    wait_for(
        "every map to end",
        lambda: all(
            i[0] in TERMINAL_TI_STATES for i in mapped_instances(bed, dag_id, run_id).values()
        ),
        RUN_TIMEOUT,
        1,
    )
    ti_ids = {str(i[2]) for i in mapped_instances(bed, dag_id, run_id).values()}
    wait_for("the workers' runs to end", lambda: not unfinished_worker_runs(bed, ti_ids), 120, 1)
    instances = mapped_instances(bed, dag_id, run_id)
    jobs = jobs_of(bed, dag_id, "solve")
    completed = {
        e.compute_job_id: e.at + (time.time() - time.monotonic())
        for e in bed.emulator.record.of_kind("job_status")
        if e.data.get("status") == "COMPLETED"
    }
    xcoms = dict(
        bed.postgres.query(
            "SELECT map_index, value FROM xcom WHERE dag_id = %s AND run_id = %s"
            " AND task_id = 'solve' AND key = 'return_value'",
            dag_id,
            run_id,
        )
    )
    runs = worker_runs(bed)
    lines = []
    for index, (state, end_date, ti_id) in sorted(instances.items()):
        value = xcoms.get(index)
        job = value.get("compute_job_id") if isinstance(value, dict) else None
        latency = (
            f"{end_date.timestamp() - completed[job]:.3f} s"
            if job in completed and end_date
            else "?"
        )
        seconds = runs.get(str(ti_id), [])
        lines.append(
            f"map {index}: {state}, job {job}, end_date {latency} after COMPLETED;"
            f" {len(seconds)} worker run(s), {sum(seconds):.1f} slot-seconds"
        )
    ends = [completed[job] for job in jobs if job in completed]
    if ends:
        lines.append(f"the {len(ends)} jobs ended within {1000 * (max(ends) - min(ends)):.0f} ms")
    report("case 8: a mapped task whose jobs end together", lines)

    assert {index: i[0] for index, i in instances.items()} == dict.fromkeys(range(maps), "success")
    assert len(jobs) == maps, f"{len(jobs)} jobs on the server for {maps} maps: {jobs}"
    for index in range(maps):
        value = xcoms.get(index)
        assert isinstance(value, dict), (
            f"map {index}: return_value is {type(value).__name__}: {value!r}"
        )
        assert value["status"] == "COMPLETED" and value["model_status"] == "OK", value
        assert value["result_url"] and value["run_log_url"], value
    assert sorted(x["compute_job_id"] for x in xcoms.values()) == sorted(jobs)
    # The job id the worker pushed before deferring stays when the triggerer ends the task.
    pushed = bed.postgres.query(
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s"
        " AND task_id = 'solve' AND key = 'compute_job_id'",
        dag_id,
        run_id,
    )
    assert sorted(row[0] for row in pushed) == sorted(jobs)
