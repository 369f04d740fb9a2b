"""A dead server fails the task after a bounded time, and the retry re-attaches.

The Airflow connection points at a :class:`~relay.TcpRelay` in front of the emulator. Mid-job the
relay dies (its port refuses connections, every relayed connection closes): neither the progress
socket nor any REST call gets an answer. After ``unreachable_limit_seconds`` (a connection extra
here, so the same DAGs ran on the code from before the limit existed: there they hung) try 1
fails with a retryable ServerUnreachable naming the job, the server and how long it tried.
Airflow puts the task up for retry; its ``on_retry_callback`` brings the relay back on the same
port, and try 2 re-attaches to the same job and follows it to the end. Blocking and deferrable
mode alike: dag.test() runs the trigger inline. The outage reads like one: a single warning
that says when the task gives up, no warning per retry.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dag_support import jobs_of, load_dags
from relay import TcpRelay

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator, airflow_connection_json

DAGS = load_dags("insight_dead_server_dags")
#: Seconds without any answer after which a followed job's task fails.
LIMIT_SECONDS = 3.0
#: About 12 s of run log: still running when try 2 re-attaches, even on a loaded machine
#: (re-attaching to a job that ended meanwhile would pass too, over REST).
DYING = dataclasses.replace(
    NAMED_SCRIPTS["quick"],
    name="dying",
    queued_seconds=0.01,
    log_lines=300,
    lines_per_second=25.0,
    batch_size=1,
)
#: Socket messages about the job the client must have received before the server dies.
MESSAGES_BEFORE_DEATH = 5
#: How long the test waits for the job to start being followed (a loaded 2-core machine).
START_WAIT_SECONDS = 60.0


@pytest.fixture(scope="module", autouse=True)
def scripts(emulator: Emulator) -> None:
    """This module's jobs run long enough to be cut off mid-run."""
    emulator.add_script("t_dead_*", DYING)


@pytest.fixture
def relay(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpRelay]:
    """A live relay to the emulator; insight_default points at it, with a short limit."""
    with TcpRelay(emulator.config.host, emulator.port) as running:
        base_url = emulator.base_url.replace(f":{emulator.port}", f":{running.port}", 1)
        client_id, secret = next(iter(emulator.config.credentials.items()))
        connection = airflow_connection_json(
            base_url,
            client_id=client_id,
            client_secret=secret,
            extra={"unreachable_limit_seconds": LIMIT_SECONDS},
        )
        monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_DEFAULT", connection)
        DAGS.ON_RETRY[:] = [running.revive]
        yield running
        DAGS.ON_RETRY.clear()


def _kill_when_followed(
    emulator: Emulator,
    relay: TcpRelay,
    dag_id: str,
    killed: dict[str, Any],
    run_over: threading.Event,
) -> None:
    """Kill the relay once a client follows the DAG's job over the socket."""
    end = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < end and not run_over.is_set():
        jobs = jobs_of(emulator, dag_id)
        # Followed = the server has pushed the job's messages over a progress socket (in
        # deferred mode that is the trigger's, not the worker's submit).
        if jobs and len(emulator.record.messages_sent(jobs[0])) >= MESSAGES_BEFORE_DEATH:
            relay.kill()
            killed["job_id"] = jobs[0]
            killed["lines"] = len(emulator.run_log(jobs[0]))
            return
        time.sleep(0.05)


def _run_with_a_death(
    emulator: Emulator, relay: TcpRelay, dag: Any, capfd: pytest.CaptureFixture[str]
) -> tuple[str, dict[str, Any], Any]:
    killed: dict[str, Any] = {}
    run_over = threading.Event()
    killer = threading.Thread(
        target=_kill_when_followed,
        args=(emulator, relay, dag.dag_id, killed, run_over),
        daemon=True,
    )
    killer.start()
    try:
        run = dag.test()
    finally:
        run_over.set()
        killer.join(timeout=5.0)
    output = capfd.readouterr()
    return output.out + output.err, killed, run


def _assert_failed_then_reattached(
    emulator: Emulator,
    relay: TcpRelay,
    dag_id: str,
    text: str,
    killed: dict[str, Any],
    run: Any,
    result: dict[str, Any],
) -> None:
    job_id = killed.get("job_id")
    assert job_id, f"the job was never followed through the relay\n{text[-3000:]}"
    assert relay.alive, "the retry did not happen (on_retry_callback brings the relay back)"
    # Try 1: a retryable ServerUnreachable naming the job, the server and how long it tried.
    unreachable = [line for line in text.splitlines() if "ServerUnreachable" in line]
    assert unreachable, text[-5000:]
    message = next(
        (line for line in text.splitlines() if "no answer from" in line and job_id in line), ""
    )
    assert message, text[-5000:]
    assert f"127.0.0.1:{relay.port}" in message, message
    waited = re.search(r"for (\d+) s\b", message)
    assert waited and int(waited.group(1)) >= LIMIT_SECONDS - 1, message
    _assert_outage_reads_like_one(text, job_id)
    # Try 2 ran and re-attached to the same job, which it followed to the end.
    assert f"Re-attaching to Insight compute job {job_id}" in text, text[-5000:]
    assert run.state == "success", text[-5000:]
    assert result["compute_job_id"] == job_id
    assert result["status"] == "COMPLETED"
    # The server saw one job and no cancel: a dead server never costs the run.
    assert jobs_of(emulator, dag_id) == [job_id]
    assert [e for e in emulator.record.requests("DELETE") if job_id in e.data["path"]] == []
    # The job really ran on while the server was unreachable: it did not end before the death.
    assert killed["lines"] < len(emulator.run_log(job_id))
    _assert_tries(dag_id)


def _assert_outage_reads_like_one(text: str, job_id: str) -> None:
    """Try 1's log: one warning that the server stopped answering, naming when the task gives
    up; no warning per retry (before, a 10-minute outage wrote about a hundred)."""
    try_one = text.split(f"Re-attaching to Insight compute job {job_id}")[0].splitlines()
    ours = [line for line in try_one if "airflow_insight" in line]
    warnings = [line for line in ours if "[warning" in line]
    assert len(warnings) == 1, "\n".join(warnings)
    (warning,) = warnings
    assert "stopped answering" in warning and "(Airflow connection 'insight_default')" in warning
    assert re.search(r"gives up at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, in \d+ s", warning), warning
    assert f"unreachable_limit_seconds={LIMIT_SECONDS:g}" in warning
    assert not [line for line in text.splitlines() if "retrying in" in line]
    # From the warning to the failure: the warning, the failure and nothing between them.
    start = ours.index(warning)
    end = next(n for n, line in enumerate(ours) if "no answer from" in line)
    assert end - start == 1, "\n".join(ours[start : end + 1])


def _assert_tries(dag_id: str) -> None:
    """The metadata DB: the solve task ended on try 2 (try 1 was up for retry, not failed)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.task_id == "solve")
            .one()
        )
        assert (ti.state, ti.try_number) == ("success", 2)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("dag_id", ["t_dead_blocking", "t_dead_deferred"])
def test_a_dead_server_fails_the_try_and_the_retry_reattaches(
    emulator: Emulator,
    relay: TcpRelay,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
) -> None:
    text, killed, run = _run_with_a_death(emulator, relay, getattr(DAGS, dag_id), capfd)
    result = collected()["result"] if run.state == "success" else {}
    _assert_failed_then_reattached(emulator, relay, dag_id, text, killed, run, result)
