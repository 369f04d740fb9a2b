"""End to end with real Airflow components: api-server, scheduler, dag-processor and triggerer.

Each component runs in its own process group with free ports and a temp SQLite AIRFLOW_HOME; the
emulator (started here) is the Insight server, reached through an ``AIRFLOW_CONN_*`` variable.
A deferrable ``InsightJobOperator`` must forward run-log lines while deferred and succeed; a second
run is marked failed while deferred, and the emulator must see the job cancelled (the trigger's
``on_kill``). A third DAG defers several jobs at once: the emulator's record must show ONE socket
(the triggerer's) serving all of them. Blocking DAGs are killed the way deploys, crashes and users
kill a worker's task: SIGTERM (the job is left running, the task goes on), SIGKILL (the retry
re-attaches: one job, never cancelled) and "mark failed" (the job is cancelled). The trigger log
of a deferred task and the socket summary are printed (run with ``-s`` to see them). Slow (about
two minutes); ``INSIGHT_SKIP_E2E=1`` skips it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from support import unused_port

from airflow_insight.compat import features
from airflow_insight.compat.sdk import airflow_version
from airflow_insight.emulator import (
    DEMO_CLIENT_SECRET,
    Emulator,
    Entry,
    JobScript,
)
from airflow_insight.hooks.insight import RUN_LOG_PREFIX
from airflow_insight.operators.insight import RESUMED_MESSAGE
from airflow_insight.protocol.reattach import derive_job_id
from airflow_insight.triggers.start import STARTED_MESSAGE

pytestmark = [
    pytest.mark.skipif(os.environ.get("INSIGHT_SKIP_E2E") == "1", reason="INSIGHT_SKIP_E2E=1"),
    pytest.mark.timeout(400),
]

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
QUICK = JobScript(name="e2e-quick", log_lines=12, lines_per_second=4.0, batch_size=1)
SLOW = dataclasses.replace(QUICK, name="e2e-slow", log_lines=2000, lines_per_second=5.0)
#: Queued long enough that every fan-out task has deferred (and its trigger subscribed) while the
#: first job still runs, however slowly the workers start; then lines stream while deferred.
FANOUT = dataclasses.replace(QUICK, name="e2e-fanout", queued_seconds=8.0, log_lines=15)
FANOUT_TASKS = 4
#: Queued long enough that the deferring worker process has exited before the job ends: on a
#: loaded machine Airflow 3.3's scheduler otherwise takes that process's late exit for the
#: resumed try's and fails it (seen for the worker resume only).
END = dataclasses.replace(QUICK, name="e2e-end", queued_seconds=10.0)
#: A mapped deferrable task's jobs, held until every map is deferred, then ended together.
MAPPED = dataclasses.replace(QUICK, name="e2e-mapped", hold="e2e_mapped")
MAPPED_TASKS = 3
#: A blocking job long enough to be signalled mid-run and re-attached to by a retry (~25 s).
BLOCKING = dataclasses.replace(QUICK, name="e2e-blocking", log_lines=250, lines_per_second=10.0)
#: The run-log logger in a trigger log: the shared short name, or the trigger's own one.
TRIGGER_RUN_LOGS = ('"insight.run_log"', "InsightJobTrigger.run_log")


def _is_run_log_record(line: str) -> bool:
    """A JSON log record on a run-log logger or, where Airflow names none (3.0's triggerer), one
    whose event carries the run-log mark."""
    if any(name in line for name in TRIGGER_RUN_LOGS):
        return True
    try:
        event = json.loads(line).get("event")
    except (ValueError, AttributeError):
        return False
    return isinstance(event, str) and event.startswith(RUN_LOG_PREFIX)


def _run_log_records(log: str) -> list[str]:
    """The run-log records of a log stream, in order."""
    return [line for line in log.splitlines() if _is_run_log_record(line)]


DAG_FILE = """
import datetime
import json
import os
from pathlib import Path
from airflow.sdk import dag
from airflow_insight.operators.insight import InsightJobOperator


class PidFileOperator(InsightJobOperator):
    # Writes "<task pid> <supervisor pid>" per try, so the test can signal the real processes.

    def execute(self, context):
        ti = context["ti"]
        path = Path(os.environ["E2E_PID_DIR"]) / f"{ti.dag_id}.{ti.try_number}"
        path.write_text(f"{os.getpid()} {os.getppid()}")
        return super().execute(context)


for name in ("e2e_block_term", "e2e_block_kill", "e2e_block_user"):
    @dag(dag_id=name, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False,
         default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=1)})
    def _blocking():
        PidFileOperator(task_id="solve", silence_limit_seconds=5.0, cancel_wait_seconds=3.0,
                        execution_timeout=datetime.timedelta(minutes=5))
    globals()[name] = _blocking()

for name in ("e2e_quick", "e2e_slow"):
    @dag(dag_id=name, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
    def _dag():
        InsightJobOperator(task_id="solve", deferrable=True, silence_limit_seconds=5.0,
                           execution_timeout=datetime.timedelta(minutes=5))
    globals()[name] = _dag()

# Deferrable, no payload: starts in the triggerer where Airflow can. computeJobType is a template
# the triggerer must render: unrendered, the server refuses the request (422).
@dag(dag_id="e2e_start", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
def _start():
    InsightJobOperator(task_id="solve", deferrable=True, silence_limit_seconds=5.0,
                       job_request={"computeJobType": "{{ 'SOL' ~ 'VER' }}"},
                       start_in_triggerer=True,
                       execution_timeout=datetime.timedelta(minutes=5))
e2e_start = _start()

@dag(dag_id="e2e_fanout", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
def _fanout():
    for n in range(FANOUT_TASKS):
        InsightJobOperator(task_id=f"solve_{n}", deferrable=True, silence_limit_seconds=5.0,
                           execution_timeout=datetime.timedelta(minutes=5))
e2e_fanout = _fanout()


def _note_success(context):
    # The success callback: Airflow runs it also for a task the triggerer ended.
    ti = context["ti"]
    Path(os.environ["E2E_PID_DIR"], f"success.{ti.dag_id}").write_text(ti.run_id)


# e2e_end ends in the triggerer; e2e_end_worker has a success callback, which keeps the
# worker resume (Airflow's DAG processor drops a success callback sent for a triggerer's end).
for name, callback in (("e2e_end", None), ("e2e_end_worker", _note_success)):
    @dag(dag_id=name, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
    def _end():
        from airflow.sdk import task

        solve = InsightJobOperator(
            task_id="solve", deferrable=True, silence_limit_seconds=5.0,
            on_success_callback=callback,
            results_path=Path(os.environ["E2E_PID_DIR"]).as_uri() + "/{{ dag.dag_id }}.zip",
        )

        @task
        def seen(result, ti=None):
            # What a downstream task gets: the type tells a dict from a JSON string.
            out = Path(os.environ["E2E_PID_DIR"], f"seen.{ti.dag_id}")
            out.write_text(json.dumps({"type": type(result).__name__, "result": result}))

        seen(solve.output)
    globals()[name] = _end()

# Mapped: starts on a worker on every line (start_from_trigger is the class's, not a map's),
# ends in the triggerer where Airflow can.
@dag(dag_id="e2e_mapped", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
def _mapped():
    InsightJobOperator.partial(
        task_id="solve", deferrable=True, silence_limit_seconds=5.0,
        execution_timeout=datetime.timedelta(minutes=5),
    ).expand(job_request=[{"computeJobType": "SOLVER"}] * MAPPED_TASKS)
e2e_mapped = _mapped()
""".replace("FANOUT_TASKS", str(FANOUT_TASKS)).replace("MAPPED_TASKS", str(MAPPED_TASKS))


def _supervisor_forwards_sigterm() -> bool:
    """Whether the task supervisor passes its SIGTERM on to the task (Airflow 3.3 on); before,
    a deploy's signal reaches the task only where the whole process group gets it."""
    from airflow.sdk.execution_time import supervisor

    return hasattr(supervisor, "_forward_signal")


_SUPERVISOR_FORWARDS_SIGTERM = _supervisor_forwards_sigterm()


def _killed_task_retries() -> bool:
    """Whether a task whose process died (SIGKILL, OOM) gets its retry: from 3.1 on the task
    supervisor asks for ``up_for_retry``; Airflow 3.0 reports such a task failed."""
    import attrs
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    return "_should_retry" in attrs.fields_dict(ActivitySubprocess)


_KILLED_TASK_RETRIES = _killed_task_retries()


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except requests.RequestException:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def airflow(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Emulator, str, dict[str, str], Path]]:
    """Emulator + the four components, shared by this module's tests (they start in ~15 s);
    yields (emulator, api base URL, auth headers, home)."""
    emulator = Emulator().start()
    emulator.add_script("e2e_quick*", QUICK)
    emulator.add_script("e2e_slow*", SLOW)
    emulator.add_script("e2e_fanout*", FANOUT)
    emulator.add_script("e2e_start*", QUICK)
    emulator.add_script("e2e_block*", BLOCKING)
    emulator.add_script("e2e_end*", END)
    emulator.add_script("e2e_mapped*", MAPPED)
    home = tmp_path_factory.mktemp("e2e") / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "pids").mkdir()
    (home / "dags" / "e2e_dags.py").write_text(DAG_FILE)
    port = unused_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-test-jwt-secret-" + "x" * 32,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(unused_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(unused_port()),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_INSIGHT_DEFAULT": emulator.airflow_connection_json(),
        "E2E_PID_DIR": str(home / "pids"),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    processes = [
        subprocess.Popen(
            [AIRFLOW, *command],
            env=env,
            start_new_session=True,  # its own process group, signalled as a whole below
            stdout=(home / f"{command[0]}.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for command in (
            # One worker: enough here, and Airflow 3.0's multi-worker start loses its child.
            ["api-server", "--port", str(port), "--workers", "1"],
            ["scheduler"],
            ["dag-processor"],
            ["triggerer"],
        )
    ]
    api = f"http://127.0.0.1:{port}"
    try:
        _wait(
            "the api-server", lambda: requests.get(f"{api}/api/v2/monitor/health", timeout=2).ok, 90
        )
        token = requests.get(f"{api}/auth/token", timeout=5).json()["access_token"]
        yield emulator, api, {"Authorization": f"Bearer {token}"}, home
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        emulator.stop()


def _trigger_run(api: str, headers: dict[str, str], dag_id: str) -> str:
    _wait(
        f"DAG {dag_id}",
        lambda: requests.get(f"{api}/api/v2/dags/{dag_id}", headers=headers, timeout=5).ok,
        120,
    )
    response = requests.post(
        f"{api}/api/v2/dags/{dag_id}/dagRuns",
        headers=headers,
        json={"logical_date": None},
        timeout=10,
    )
    response.raise_for_status()
    run_id: str = response.json()["dag_run_id"]
    return run_id


def _ti_state(
    api: str, headers: dict[str, str], dag_id: str, run_id: str, task_id: str = "solve"
) -> str | None:
    url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    state: str | None = requests.get(url, headers=headers, timeout=5).json().get("state")
    return state


def _mark_failed(api: str, headers: dict[str, str], dag_id: str, run_id: str) -> None:
    """What a user's "mark failed" on the running ``solve`` task does, through the REST API."""
    response = requests.patch(
        f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/solve",
        headers=headers,
        json={"new_state": "failed"},
        timeout=10,
    )
    response.raise_for_status()


def _clear(api: str, headers: dict[str, str], dag_id: str, run_id: str) -> None:
    """What a user's "clear" of the failed ``solve`` task does, through the REST API."""
    response = requests.post(
        f"{api}/api/v2/dags/{dag_id}/clearTaskInstances",
        headers=headers,
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["solve"], "only_failed": True},
        timeout=10,
    )
    response.raise_for_status()


def _logs_text(home: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in (home / "logs").rglob("*") if path.is_file()
    )


def test_deferred_operator_streams_succeeds_and_is_cancelled_when_marked_failed(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    emulator, api, headers, home = airflow

    run_id = _trigger_run(api, headers, "e2e_quick")
    state = _wait(
        "e2e_quick to end",
        lambda: (
            _ti_state(api, headers, "e2e_quick", run_id) in ("success", "failed", "upstream_failed")
            and _ti_state(api, headers, "e2e_quick", run_id)
        ),
        180,
    )
    assert state == "success", (home / "scheduler.out").read_text()[-3000:]
    logs = _logs_text(home)
    job_ids = [entry.compute_job_id for entry in emulator.record.of_kind("subscribe")]
    quick_job = next(job for job in job_ids if job and job.startswith("e2e_quick"))
    assert _run_log_records(logs)  # lines were forwarded while deferred
    for line in emulator.run_log(quick_job):
        assert line in logs
    assert DEMO_CLIENT_SECRET not in logs

    run_id = _trigger_run(api, headers, "e2e_slow")
    _wait(
        "e2e_slow to defer", lambda: _ti_state(api, headers, "e2e_slow", run_id) == "deferred", 180
    )
    time.sleep(2)  # a few lines flow through the trigger
    _mark_failed(api, headers, "e2e_slow", run_id)
    deletes = _wait(
        "the cancellation",
        lambda: [
            entry
            for entry in emulator.record.of_kind("delete")
            if (entry.compute_job_id or "").startswith("e2e_slow")
        ],
        60,
    )
    assert len(deletes) >= 1
    slow_job = deletes[0].compute_job_id
    assert slow_job is not None
    emulator.wait_for_status(slow_job, {"CANCELLED", "DELETED"}, timeout_seconds=10)
    _print_record(emulator, "e2e_slow")


def _trigger_log(home: Path, dag_id: str, task_id: str) -> str:
    """The trigger's log stream of the task (``attempt=N.log.trigger.<triggerer id>.log``)."""
    return "\n".join(
        path.read_text(errors="replace")
        for path in (home / "logs").rglob("*.log.trigger.*")
        if f"dag_id={dag_id}" in path.parts and f"task_id={task_id}" in path.parts
    )


def _deferred_and_forwarding(
    api: str, headers: dict[str, str], run_id: str, home: Path, task_id: str
) -> str | None:
    """The trigger log, once it holds run-log lines while the task is still deferred."""
    if _ti_state(api, headers, "e2e_fanout", run_id, task_id) != "deferred":
        return None
    log = _trigger_log(home, "e2e_fanout", task_id)
    if len(_run_log_records(log)) < 3:
        return None
    # Still deferred after the read: the lines were forwarded while the task was deferred.
    if _ti_state(api, headers, "e2e_fanout", run_id, task_id) != "deferred":
        return None
    return log


def _socket_summary(entries: Sequence[Entry], job_ids: Sequence[str]) -> dict[str, set[str]]:
    """``{connection id: the jobs whose messages it carried}`` for ``job_ids``."""
    carried: dict[str, set[str]] = {}
    for entry in entries:
        if entry.kind in ("ws_sent", "subscribe") and entry.compute_job_id in job_ids:
            assert entry.connection_id is not None
            carried.setdefault(entry.connection_id, set()).add(entry.compute_job_id)
    return carried


def test_one_triggerer_socket_serves_several_deferred_jobs(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    emulator, api, headers, home = airflow
    tasks = [f"solve_{n}" for n in range(FANOUT_TASKS)]
    run_id = _trigger_run(api, headers, "e2e_fanout")

    # (a) While solve_0 is deferred, its trigger log already holds forwarded run-log lines.
    live_log = _wait(
        "run-log lines in solve_0's trigger log while it is deferred",
        lambda: _deferred_and_forwarding(api, headers, run_id, home, "solve_0"),
        180,
    )
    forwarded = _run_log_records(live_log)
    streams = [
        p.name for p in (home / "logs").rglob("*.log.trigger.*") if "task_id=solve_0" in p.parts
    ]
    print(f"\n--- {streams}: trigger log of e2e_fanout.solve_0, read while it was deferred ---")
    print("\n".join(live_log.splitlines()[:12]))
    print(f"... ({len(forwarded)} run-log lines forwarded so far)")

    def ended() -> list[str | None] | None:
        states = [_ti_state(api, headers, "e2e_fanout", run_id, task) for task in tasks]
        return (
            states if all(s in ("success", "failed", "upstream_failed") for s in states) else None
        )

    states = _wait("every fan-out task to end", ended, 180)
    assert states == ["success"] * FANOUT_TASKS, (home / "scheduler.out").read_text()[-3000:]

    # (b) One socket carried every fan-out job: one ws_open, one connection id, all jobs on it.
    entries = emulator.record.entries()
    job_ids = sorted(
        {e.compute_job_id for e in entries if (e.compute_job_id or "").startswith("e2e_fanout")}
    )
    assert len(job_ids) == FANOUT_TASKS, job_ids
    carried = _socket_summary(entries, job_ids)
    opens = [e for e in entries if e.kind == "ws_open" and e.connection_id in carried]
    print("\n--- emulator record: sockets that carried the fan-out jobs ---")
    for connection_id, jobs in carried.items():
        sent = [e for e in entries if e.kind == "ws_sent" and e.connection_id == connection_id]
        print(f"connection {connection_id}: {len(sent)} messages sent, jobs {sorted(jobs)}")
    print(f"ws_open entries for those connections: {len(opens)}")
    subscribed = [e.at for e in entries if e.kind == "subscribe" and e.compute_job_id in job_ids]
    first_end = min(
        e.at
        for e in entries
        if e.kind == "job_status"
        and e.compute_job_id in job_ids
        and e.data["status"] == "COMPLETED"
    )
    print(
        f"all {len(job_ids)} jobs subscribed within {max(subscribed) - min(subscribed):.1f} s;"
        f" the first job completed {first_end - max(subscribed):.1f} s after the last subscribe"
    )
    assert len(carried) == 1, carried
    assert len(opens) == 1
    (jobs,) = carried.values()
    assert sorted(jobs) == job_ids
    # The jobs were followed at the same time: every one was subscribed before any completed.
    assert max(subscribed) < first_end
    # Every job's run log went out on that socket and reached its task's trigger log.
    for task_id in tasks:
        log = _trigger_log(home, "e2e_fanout", task_id)
        assert len(_run_log_records(log)) == FANOUT.log_lines, task_id
    assert DEMO_CLIENT_SECRET not in _logs_text(home)


# ---------------------------------------------------------------------- blocking mode, killed


def _task_log(home: Path, dag_id: str) -> str:
    """Every attempt's log of ``dag_id``'s ``solve`` task."""
    return "\n".join(
        path.read_text(errors="replace")
        for path in sorted((home / "logs").rglob("attempt=*.log"))
        if f"dag_id={dag_id}" in path.parts
    )


def _pids(home: Path, dag_id: str, try_number: int) -> tuple[int, int] | None:
    """(task process, its supervisor) of a try, once the try has started executing."""
    path = home / "pids" / f"{dag_id}.{try_number}"
    if not path.exists() or not path.read_text().strip():
        return None
    task_pid, supervisor_pid = (int(n) for n in path.read_text().split())
    return task_pid, supervisor_pid


def _running_job(emulator: Emulator, dag_id: str, lines: int = 5) -> str | None:
    """The job of ``dag_id`` once it is executing and has streamed ``lines`` lines."""
    for job_id in list(emulator.hub.jobs):
        if job_id.startswith(f"{dag_id}.") and len(emulator.run_log(job_id)) >= lines:
            return job_id
    return None


def _end_state(api: str, headers: dict[str, str], dag_id: str, run_id: str) -> str:
    state: str = _wait(
        f"{dag_id} to end",
        lambda: (
            _ti_state(api, headers, dag_id, run_id) in ("success", "failed", "upstream_failed")
            and _ti_state(api, headers, dag_id, run_id)
        ),
        240,
    )
    return state


def _print_record(emulator: Emulator, dag_id: str) -> tuple[list[str], list[Any], list[str]]:
    """Print the emulator's record of ``dag_id``'s jobs (run with ``-s``); (jobs, DELETEs,
    statuses pushed)."""
    jobs = [job for job in list(emulator.hub.jobs) if job.startswith(f"{dag_id}.")]
    deletes = [e for e in emulator.record.of_kind("delete") if e.compute_job_id in jobs]
    kinds = [e.kind for e in emulator.record.entries() if e.compute_job_id in jobs]
    subscribes = kinds.count("subscribe")
    statuses = [
        e.data["status"] for e in emulator.record.of_kind("job_status") if e.compute_job_id in jobs
    ]
    print(
        f"\n--- emulator record for {dag_id} (Airflow {airflow_version()}): jobs {jobs},"
        f" DELETEs {len(deletes)}, SUBSCRIBEs {subscribes}, statuses {statuses} ---"
    )
    return jobs, deletes, statuses


def _one_job_never_cancelled(emulator: Emulator, dag_id: str) -> str:
    """The emulator's record: exactly one job of ``dag_id``, never DELETEd, COMPLETED."""
    jobs, deletes, statuses = _print_record(emulator, dag_id)
    assert len(jobs) == 1, jobs
    assert deletes == []
    (job_id,) = jobs
    assert emulator.job(job_id)["status"] == "COMPLETED"
    assert "CANCELLING" not in statuses and "CANCELLED" not in statuses
    return job_id


def _start_blocking(
    airflow: tuple[Emulator, str, dict[str, str], Path], dag_id: str
) -> tuple[str, str, tuple[int, int]]:
    """Trigger ``dag_id`` and wait until its job streams: (run id, job id, (task, supervisor))."""
    emulator, api, headers, home = airflow
    run_id = _trigger_run(api, headers, dag_id)
    job_id = _wait("the blocking job to stream", lambda: _running_job(emulator, dag_id), 180)
    pids: tuple[int, int] = _wait("the task's pids", lambda: _pids(home, dag_id, 1), 30)
    return run_id, job_id, pids


def test_sigterm_to_a_blocking_task_leaves_the_job_running(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    """A deploy stops the worker: SIGTERM to the task's supervisor (forwarded to the task, as
    Airflow does from 3.3 on) and then to the task itself. Neither cancels the job; the task goes on
    following it and succeeds in its first try."""
    emulator, api, headers, home = airflow
    dag_id = "e2e_block_term"
    run_id, job_id, (task_pid, supervisor_pid) = _start_blocking(airflow, dag_id)
    message = f"Not cancelling Insight compute job {job_id}: the task instance is still"
    kills = 0
    if _SUPERVISOR_FORWARDS_SIGTERM:
        os.kill(supervisor_pid, signal.SIGTERM)
        kills += 1
        _wait("the first on_kill", lambda: _task_log(home, dag_id).count(message) >= kills, 60)
    os.kill(task_pid, signal.SIGTERM)
    kills += 1
    _wait("the task's on_kill", lambda: _task_log(home, dag_id).count(message) >= kills, 60)
    assert _end_state(api, headers, dag_id, run_id) == "success", _task_log(home, dag_id)[-3000:]
    assert _one_job_never_cancelled(emulator, dag_id) == job_id
    assert "state 'running'" in _task_log(home, dag_id)
    print("\n".join(line for line in _task_log(home, dag_id).splitlines() if message in line))
    assert _pids(home, dag_id, 2) is None  # no second try was needed


def test_a_sigkilled_blocking_task_is_reattached_by_its_retry(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    """A crash (OOM, node loss): SIGKILL to the task process mid-job. The retry re-attaches to
    the still-running job; the emulator holds one job, never cancelled."""
    emulator, api, headers, home = airflow
    dag_id = "e2e_block_kill"
    run_id, job_id, (task_pid, _) = _start_blocking(airflow, dag_id)
    os.kill(task_pid, signal.SIGKILL)
    if not _KILLED_TASK_RETRIES:
        # Airflow 3.0 fails a task whose process died without its retry: a user clears it.
        assert _end_state(api, headers, dag_id, run_id) == "failed"
        _clear(api, headers, dag_id, run_id)
    assert _end_state(api, headers, dag_id, run_id) == "success", _task_log(home, dag_id)[-3000:]
    assert _pids(home, dag_id, 2) is not None  # the second try ran
    assert _one_job_never_cancelled(emulator, dag_id) == job_id
    log = _task_log(home, dag_id)
    assert f"Re-attaching to Insight compute job {job_id}" in log
    print("\n".join(line for line in log.splitlines() if "Re-attaching" in line))
    assert emulator.run_log(job_id)[-1] in log


def test_marking_a_running_blocking_task_failed_cancels_its_job(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    """A user's decision: "mark failed" while the worker follows the job. Airflow's supervisor
    SIGTERMs the task; its state is failed, so on_kill cancels the job."""
    emulator, api, headers, home = airflow
    dag_id = "e2e_block_user"
    run_id, job_id, _ = _start_blocking(airflow, dag_id)
    _mark_failed(api, headers, dag_id, run_id)
    deletes = _wait(
        "the cancellation",
        lambda: [e for e in emulator.record.of_kind("delete") if e.compute_job_id == job_id],
        60,
    )
    assert len(deletes) == 1
    emulator.wait_for_status(job_id, {"CANCELLED"}, timeout_seconds=10)
    _print_record(emulator, dag_id)
    assert "a user stopped it" in _wait(
        "the kill in the task log",
        lambda: "a user stopped it" in _task_log(home, dag_id) and _task_log(home, dag_id),
        30,
    )
    assert _ti_state(api, headers, dag_id, run_id) == "failed"


# ---------------------------------------------------------------------- started in the triggerer


def _xcom(api: str, headers: dict[str, str], dag_id: str, run_id: str, key: str) -> Any:
    url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/solve/xcomEntries/{key}"
    response = requests.get(url, headers=headers, timeout=10)  # 3.0 refuses ?deserialize
    response.raise_for_status()
    return response.json()["value"]


@pytest.mark.skipif(
    not features.start_in_triggerer().on, reason=features.start_in_triggerer().describe()
)
def test_a_deferrable_task_without_payload_starts_in_the_triggerer(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    """No worker runs the start: the triggerer renders the templated request, submits the job on
    its own socket (tagged with that socket's connection-id) and follows it; where the end is
    done there too, no worker runs the task at all."""
    emulator, api, headers, home = airflow
    dag_id = "e2e_start"
    run_id = _trigger_run(api, headers, dag_id)
    state = _end_state(api, headers, dag_id, run_id)
    trigger_log, task_log = _trigger_log(home, dag_id, "solve"), _task_log(home, dag_id)
    assert state == "success", (trigger_log + task_log)[-4000:]
    job_id = derive_job_id(dag_id, run_id, "solve", -1, 1)
    assert _one_job_never_cancelled(emulator, dag_id) == job_id
    # The start happened in the trigger; the worker's part is the resume alone.
    started = STARTED_MESSAGE % job_id
    assert started in trigger_log
    worker_part = task_log.replace(trigger_log, "")
    assert "Submitted Insight compute job" not in worker_part
    if features.end_in_triggerer().on:
        # Started and ended there: no worker ran any part of this task.
        assert "the task ends here, in the triggerer" in trigger_log
        assert RESUMED_MESSAGE not in task_log
    else:
        assert RESUMED_MESSAGE in worker_part
    for line in emulator.run_log(job_id):
        assert line in task_log
    # The submit named the socket the triggerer follows the job on, which the server knew.
    (created,) = [e for e in emulator.record.of_kind("job_created") if e.compute_job_id == job_id]
    assert created.data["connectionKnown"] is True
    carried = _socket_summary(emulator.record.entries(), [job_id])
    assert list(carried) == [created.connection_id]
    result = _xcom(api, headers, dag_id, run_id, "return_value")
    assert result["compute_job_id"] == job_id and result["status"] == "COMPLETED"
    assert _xcom(api, headers, dag_id, run_id, "compute_job_id") == job_id
    print(
        f"\n--- e2e_start on Airflow {airflow_version()}: job {job_id}, submitted on connection"
        f" {created.connection_id}; trigger log lines naming the start: ---"
    )
    print("\n".join(line for line in trigger_log.splitlines() if "triggerer" in line))
    print(f"--- its XComs: return_value {json.dumps(result)}; compute_job_id {job_id} ---")


def _ended(
    api: str, headers: dict[str, str], dag_id: str, home: Path
) -> tuple[str, dict[str, Any]]:
    """Run ``dag_id`` to its end; (its run id, what its downstream task received)."""
    run_id = _trigger_run(api, headers, dag_id)

    def ended() -> str | None:
        state = _ti_state(api, headers, dag_id, run_id, "seen")
        return state if state in ("success", "failed", "upstream_failed") else None

    state = _wait(f"{dag_id} to end", ended, 180)
    assert state == "success", _task_log(home, dag_id)[-3000:]
    seen: dict[str, Any] = json.loads((home / "pids" / f"seen.{dag_id}").read_text())
    return run_id, seen


def _end_latency(
    airflow: tuple[Emulator, str, dict[str, str], Path], dag_id: str, run_id: str, job_id: str
) -> float:
    """Seconds from the job's COMPLETED (the emulator's clock) to the task's ``end_date``."""
    from datetime import datetime

    emulator, api, headers, _ = airflow
    completed = next(
        entry.at
        for entry in emulator.record.of_kind("job_status")
        if entry.compute_job_id == job_id and entry.data["status"] == "COMPLETED"
    )
    completed_wall = time.time() - (time.monotonic() - completed)
    url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/solve"
    end = requests.get(url, headers=headers, timeout=5).json()["end_date"]
    return datetime.fromisoformat(end).timestamp() - completed_wall


def _without_job_ids(result: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The result with what differs between two jobs taken out (ids, scenario URLs, paths)."""
    kept = {key: value for key, value in result.items() if not key.endswith(("_url", "_path"))}
    return json.loads(json.dumps(kept).replace(job_id, "JOB"))


def test_a_successful_deferred_task_ends_in_the_triggerer_with_the_workers_xcoms(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    """No worker resumes it: the task log has no execute_complete part, the trigger log says it
    ended there; the XComs (a dict, not a JSON string) and the results file are as with the
    worker resume of a twin whose success callback keeps it (and runs)."""
    emulator, api, headers, home = airflow
    started = time.monotonic()
    run_id, seen = _ended(api, headers, "e2e_end", home)
    worker_run_id, worker_seen = _ended(api, headers, "e2e_end_worker", home)
    print(f"\nboth DAGs ran in {time.monotonic() - started:.1f} s")

    assert seen["type"] == worker_seen["type"] == "dict"
    result, worker_result = seen["result"], worker_seen["result"]
    job_id, worker_job_id = result["compute_job_id"], worker_result["compute_job_id"]
    assert _without_job_ids(result, job_id) == _without_job_ids(worker_result, worker_job_id)
    assert result["status"] == "COMPLETED" and result["result_url"].startswith(emulator.base_url)
    assert result["results_path"] == (home / "pids").as_uri() + "/e2e_end.zip"
    assert (home / "pids" / "e2e_end.zip").read_bytes()[:2] == b"PK"
    for key in ("return_value", "compute_job_id", "insight_job_url"):
        value = _xcom(api, headers, "e2e_end", run_id, key)
        worker_value = _xcom(api, headers, "e2e_end_worker", worker_run_id, key)
        assert type(value) is type(worker_value), (key, value, worker_value)
    assert _xcom(api, headers, "e2e_end", run_id, "insight_job_url").startswith(emulator.base_url)

    task_log, worker_task_log = _task_log(home, "e2e_end"), _task_log(home, "e2e_end_worker")
    assert RESUMED_MESSAGE not in task_log, task_log[-3000:]
    assert RESUMED_MESSAGE in worker_task_log  # the twin did resume on a worker
    trigger_log = _trigger_log(home, "e2e_end", "solve")
    assert "the task ends here, in the triggerer" in trigger_log, trigger_log[-3000:]
    print(trigger_log[-1500:])
    for dag_id, ran, job in (
        ("e2e_end", run_id, job_id),
        ("e2e_end_worker", worker_run_id, worker_job_id),
    ):
        print(
            f"{dag_id}: COMPLETED to task end_date {_end_latency(airflow, dag_id, ran, job):.2f} s"
        )
    callback = home / "pids" / "success.e2e_end_worker"
    _wait("the success callback", callback.exists, 120)
    assert callback.read_text() == worker_run_id


def _maps(api: str, headers: dict[str, str], dag_id: str, run_id: str) -> dict[int, Any]:
    """``{map index: task instance}`` of the run's mapped ``solve``, as the REST API gives them."""
    url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/solve/listMapped"
    found = requests.get(url, headers=headers, timeout=10).json().get("task_instances", [])
    return {ti["map_index"]: ti for ti in found}


def _map_xcom(
    api: str, headers: dict[str, str], dag_id: str, run_id: str, index: int, key: str
) -> Any:
    url = (
        f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/solve/xcomEntries/{key}"
        f"?map_index={index}"
    )
    response = requests.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()["value"]


def test_a_mapped_deferred_task_whose_jobs_end_together_ends_with_its_xcoms(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    """Every map is deferred and followed before the emulator ends all their jobs at once; each
    map succeeds with its job's result dict, job id and link as XComs (the link and the id were
    pushed by the worker before deferring and stay when the triggerer ends the task)."""
    from datetime import datetime

    emulator, api, headers, home = airflow
    dag_id = "e2e_mapped"
    run_id = _trigger_run(api, headers, dag_id)

    def held() -> bool:
        maps = _maps(api, headers, dag_id, run_id)
        followed = {e.compute_job_id for e in emulator.record.of_kind("subscribe")}
        jobs = {derive_job_id(dag_id, run_id, "solve", index, 1) for index in maps}
        deferred = [ti for ti in maps.values() if ti["state"] == "deferred"]
        return len(deferred) == MAPPED_TASKS and jobs <= followed

    _wait("every map to be deferred and its job followed", held, 180)
    emulator.open_gate("e2e_mapped")

    def ended() -> dict[int, Any] | None:
        maps = _maps(api, headers, dag_id, run_id)
        done = all(ti["state"] in ("success", "failed") for ti in maps.values())
        return maps if done and len(maps) == MAPPED_TASKS else None

    maps = _wait("every map to end", ended, 180)
    lines = []
    for index, ti in sorted(maps.items()):
        job_id = derive_job_id(dag_id, run_id, "solve", index, 1)
        assert ti["state"] == "success", _task_log(home, dag_id)[-3000:]
        result = _map_xcom(api, headers, dag_id, run_id, index, "return_value")
        assert isinstance(result, dict), result
        assert result["compute_job_id"] == job_id and result["status"] == "COMPLETED", result
        assert _map_xcom(api, headers, dag_id, run_id, index, "compute_job_id") == job_id
        link = _map_xcom(api, headers, dag_id, run_id, index, "insight_job_url")
        assert link.startswith(emulator.base_url), link
        completed = next(
            e.at
            for e in emulator.record.of_kind("job_status")
            if e.compute_job_id == job_id and e.data["status"] == "COMPLETED"
        )
        completed_wall = time.time() - (time.monotonic() - completed)
        latency = datetime.fromisoformat(ti["end_date"]).timestamp() - completed_wall
        lines.append(f"map {index}: job {job_id}, COMPLETED to task end_date {latency:.2f} s")
    if features.end_in_triggerer().on:
        assert "the task ends here, in the triggerer" in _trigger_log(home, dag_id, "solve")
    print(f"\n--- e2e_mapped on Airflow {airflow_version()} ---\n" + "\n".join(lines))
