"""Deferrable InsightJobOperator and InsightJobSensor under ``dag.test()``.

``dag.test()`` runs each trigger inline, in this process, so the task log on stdout holds the
worker's part, the trigger's part and ``execute_complete``'s part one after the other. The DAGs
are in ``dags/insight_deferrable_dags.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dag_support import AIRFLOW_LINE, assert_no_secrets, jobs_of, load_dags, run_log_records

from airflow_insight.compat import features
from airflow_insight.emulator import NAMED_SCRIPTS, Emulator, JobScript, faults
from airflow_insight.hooks.insight import RUN_LOG_PREFIX
from airflow_insight.operators.insight import RESUMED_MESSAGE

#: Lines come live while the trigger follows (a few batches, not all at once). Queued long
#: enough for the trigger to subscribe first even on a loaded machine: a job that ended before
#: the subscription is (rightly) read over REST, which this script's test says never happens.
STREAMED = JobScript(
    name="streamed", queued_seconds=4.0, log_lines=30, lines_per_second=150.0, batch_size=3
)
#: Long enough (about 3 s) for the test to cut the trigger's socket part-way through, even when
#: the trigger starts late on a loaded machine.
SPLIT = dataclasses.replace(
    STREAMED, name="split", queued_seconds=0.01, log_lines=60, lines_per_second=20.0, batch_size=1
)
LONG = JobScript(
    name="long", queued_seconds=0.01, log_lines=2000, lines_per_second=20.0, batch_size=1
)


DAGS = load_dags("insight_deferrable_dags")
#: The blocking-mode twins, to compare failure messages with.
BLOCKING_DAGS = load_dags("insight_test_dags")


@pytest.fixture(scope="module", autouse=True)
def scripts(emulator: Emulator) -> None:
    """Job scripts for this module's DAGs (job ids start with the DAG id)."""
    emulator.add_script("td_success.*", STREAMED)
    emulator.add_script("td_split.*", SPLIT)
    emulator.add_script("td_failed.*", NAMED_SCRIPTS["failed"])
    emulator.add_script("td_model_error.*", NAMED_SCRIPTS["model-error"])
    emulator.add_script("td_timeout.*", LONG)
    emulator.add_script("td_sensor.*", STREAMED)
    emulator.add_script("td_sensor_*.*", STREAMED)


@pytest.fixture
def clean_faults(emulator: Emulator) -> Iterator[None]:
    """Faults are server-wide: disarm whatever a test left armed."""
    yield
    emulator.clear_faults()


def _run_log_gets(emulator: Emulator, job_id: str) -> int:
    """How many times the job's run log was read over REST."""
    path = f"/api/scenarios/{emulator.hub.jobs[job_id].scenario_id}/run-log"
    return len(emulator.record.requests("GET", path))


def _records(text: str) -> list[str]:
    """Every run-log record of ``text`` (whichever adapter forwarded it), in order."""
    return run_log_records(text)


def _split_at_resume(text: str) -> tuple[list[str], list[str]]:
    """(the run-log records forwarded while deferred, those execute_complete forwarded)."""
    lines = text.splitlines()
    resumed = next(i for i, line in enumerate(lines) if RESUMED_MESSAGE in line)
    return _records("\n".join(lines[:resumed])), _records("\n".join(lines[resumed:]))


def _assert_forwarded_once_in_order(records: list[str], log: list[str]) -> None:
    """Each run-log line is in the records once, in order: no duplicate, no gap."""
    assert log
    assert len(records) == len(log), (len(records), len(log))
    for record, line in zip(records, log, strict=True):
        assert f"{RUN_LOG_PREFIX}{line.strip()}" in record


def _xcoms(dag_id: str) -> dict[str, Any]:
    """Every XCom of the DAG's runs, ``{"task_id/key": value}``, read from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id).all()
        return {f"{row.task_id}/{row.key}": row.value for row in rows}


def test_deferred_job_succeeds_with_the_run_log_forwarded_once_by_the_trigger(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    DAGS.DEFERRED.clear()
    run = DAGS.td_success.test()
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    result = collected()["result"]
    job_id = result["compute_job_id"]
    assert (result["status"], result["model_status"]) == ("COMPLETED", "OK")
    # The trigger forwarded the lines while deferred; execute_complete had nothing left to add.
    trigger_records, operator_records = _split_at_resume(output.out)
    assert trigger_records
    _assert_forwarded_once_in_order(trigger_records + operator_records, emulator.run_log(job_id))
    # The socket brought every line (RUNLOG_COMPLETED counted them): neither the trigger nor
    # execute_complete read the run log over REST.
    assert _run_log_gets(emulator, job_id) == 0
    # Before deferring: the job id was in the task state store and in XCom; no defer timeout.
    (seen,) = DAGS.DEFERRED
    assert seen["job_id"] == job_id
    stored = {"compute_job_id": job_id} if features.task_state_store().on else None
    assert seen["state"] == stored
    assert seen["xcom"] == job_id
    assert seen["defer_timeout"] is None
    classpath, kwargs = seen["trigger"]
    assert classpath == "airflow_insight.triggers.insight.InsightJobTrigger"
    assert kwargs["compute_job_id"] == job_id
    assert kwargs["end_by"] is None  # no execution_timeout
    xcoms = _xcoms("td_success")
    assert xcoms["solve/compute_job_id"] == job_id
    assert xcoms["solve/insight_job_url"].startswith(emulator.base_url)
    assert_no_secrets(
        output.out + output.err + json.dumps(seen) + json.dumps(xcoms, default=str), emulator
    )


def test_execute_complete_forwards_only_the_lines_the_trigger_missed(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
    clean_faults: None,
) -> None:
    """The trigger loses its socket part-way and cannot fetch the final run log: it forwards
    the first lines only, and execute_complete forwards exactly the rest (no duplicate, no gap).
    """

    def cut_the_socket_part_way() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = jobs_of(emulator, "td_split")
            if jobs and len(emulator.record.messages_sent(compute_job_id=jobs[0])) >= 8:
                emulator.inject(
                    faults.RefuseHandshake(status=503, times=None),
                    faults.DropSocket(after_messages=0),
                    faults.HttpError(method="GET", path="*/run-log", status=404, times=1),
                )
                return
            time.sleep(0.005)

    cutter = threading.Thread(target=cut_the_socket_part_way, daemon=True)
    cutter.start()
    run = DAGS.td_split.test()
    cutter.join(timeout=10)
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    job_id = collected()["result"]["compute_job_id"]
    log = emulator.run_log(job_id)
    trigger_records, operator_records = _split_at_resume(output.out)
    # Both parts forwarded something: the split really happened.
    assert 0 < len(trigger_records) < len(log), (len(trigger_records), len(log))
    assert operator_records
    _assert_forwarded_once_in_order(trigger_records + operator_records, log)
    # The trigger's GET met the 404; execute_complete read the log again.
    assert _run_log_gets(emulator, job_id) >= 2
    assert any(e.data.get("fault") == "drop-socket" for e in emulator.record.of_kind("fault"))


def _failure_message(text: str, job_id: str) -> str:
    """The exception that failed the task (type, message, run-log tail), job id made generic."""
    lines = text.splitlines()
    starts = [
        i
        for i, line in enumerate(lines)
        if "airflow_insight.exceptions." in line and job_id in line
    ]
    assert starts, text[-3000:]
    first = lines[starts[-1]]
    message = [first[first.index("airflow_insight.exceptions.") :]]
    message += itertools.takewhile(lambda line: line.startswith("  "), lines[starts[-1] + 1 :])
    return "\n".join(message).replace(job_id, "<job>")


@pytest.mark.parametrize(
    ("blocking_dag", "dag_id", "expected"),
    [
        ("t_failed", "td_failed", "ended with status FAILED"),
        ("t_model_error", "td_model_error", "model status 'ERROR'"),
    ],
)
def test_a_failed_job_fails_the_task_as_in_blocking_mode(
    emulator: Emulator,
    blocking_dag: str,
    dag_id: str,
    expected: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    blocking_run = getattr(BLOCKING_DAGS, blocking_dag).test()
    blocking = capfd.readouterr().out
    run = getattr(DAGS, dag_id).test()
    output = capfd.readouterr()
    assert (blocking_run.state, run.state) == ("failed", "failed")
    assert expected in output.out
    assert "run-log lines:" in output.out
    (blocking_job,) = jobs_of(emulator, blocking_dag)[-1:]
    (job_id,) = jobs_of(emulator, dag_id)[-1:]
    assert _failure_message(output.out, job_id) == _failure_message(blocking, blocking_job)
    assert_no_secrets(output.out + output.err, emulator)


def test_execution_timeout_makes_the_trigger_cancel_the_job(
    emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    run = DAGS.td_timeout.test()
    output = capfd.readouterr()
    assert run.state == "failed", output.out[-3000:]
    (job_id,) = jobs_of(emulator, "td_timeout")
    assert emulator.wait_for_status(job_id, {"CANCELLED"}, timeout_seconds=10.0)
    assert "Cancelling Insight compute job" in output.out
    assert "execution_timeout reached" in output.out
    assert "the job cancelled" in output.out
    (delete,) = [e for e in emulator.record.of_kind("delete") if e.compute_job_id == job_id]
    assert delete
    # The trigger forwarded lines while it waited for end_by.
    deferred, _ = _split_at_resume(output.out)
    assert deferred


@pytest.mark.parametrize(
    "dag_id",
    [
        "td_sensor",
        "td_sensor_poke",
        pytest.param(
            "td_sensor_reschedule",
            marks=pytest.mark.xfail(
                AIRFLOW_LINE == (3, 0),
                reason="under Airflow 3.0.6's dag.test() the rescheduled second poke fails the"
                " run; the cause is not found yet (3.1 on pass)",
            ),
        ),
    ],
)
def test_the_sensor_waits_for_a_fire_and_forget_job_in_each_mode(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
) -> None:
    """Deferrable (``td_sensor``), poke and reschedule: the same result, the same run log."""
    run = getattr(DAGS, dag_id).test()
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    result = collected()["result"]
    (job_id,) = jobs_of(emulator, dag_id)
    assert result["compute_job_id"] == job_id
    assert (result["status"], result["model_status"]) == ("COMPLETED", "OK")
    xcoms = _xcoms(dag_id)
    # The operator returned at once (fire and forget): the job was not finished yet.
    assert xcoms["submit/return_value"]["compute_job_id"] == job_id
    assert xcoms["submit/return_value"]["status"] != "COMPLETED"
    records = _records(output.out)
    _assert_forwarded_once_in_order(records, emulator.run_log(job_id))
    # The sensor never cancels a job it does not own.
    assert not [e for e in emulator.record.of_kind("delete") if e.compute_job_id == job_id]
    assert_no_secrets(output.out + output.err + json.dumps(xcoms, default=str), emulator)


@pytest.mark.parametrize("dag_id", ["td_storage_blocking", "td_storage_deferred"])
def test_object_storage_urls_carry_the_payload_and_the_results(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
) -> None:
    """Payload read from and results written to ``file://`` URLs, blocking and deferred alike.

    Under ``dag.test()`` the trigger runs inline and the task resumes with the event's payload,
    so the deferred task ends in ``execute_complete`` even though the end could be done in a
    triggerer: the result must be the same dict either way.
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    emulator.add_script(f"{dag_id}.*", STREAMED)
    run = getattr(DAGS, dag_id).test()
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    result = collected()["result"]
    job_id = result["compute_job_id"]
    assert result["results_path"].startswith("file://")
    assert result["results_path"].endswith("/results.zip")
    written = ObjectStoragePath(result["results_path"]).read_bytes()
    assert written[:2] == b"PK"  # the results zip, as the server serves it
    sent = emulator.hub.jobs[job_id].payload
    assert sent is not None and b"infeasible.lp" in sent  # the model file, zipped
    assert (RESUMED_MESSAGE in output.out) is dag_id.endswith("deferred")
