"""InsightJobOperator under ``dag.test()`` against the emulator: end states, kill, re-attach.

The DAGs are in ``dags/insight_test_dags.py`` (dag.test() needs them in the DAGs folder).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dag_support import (
    CONSOLE_WITHOUT_LOGGER_NAMES,
    assert_no_secrets,
    jobs_of,
    load_dags,
    run_log_records,
)

from airflow_insight.emulator import Emulator
from airflow_insight.hooks.insight import RUN_LOG_PREFIX

DAGS = load_dags("insight_test_dags")


def test_success_returns_the_result_and_forwards_the_run_log(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    run = DAGS.t_success.test()
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    seen = collected()
    result, link = seen["result"], seen["link"]
    job_id = result["compute_job_id"]
    assert job_id.startswith("t_success.solve-")
    assert (result["status"], result["model_status"]) == ("COMPLETED", "OK")
    assert result["execution_attempts"] == 1
    assert result["result_url"].startswith(emulator.base_url + "/")
    assert result["run_log_url"].startswith(emulator.base_url + "/")
    assert Path(result["results_path"]).read_bytes()[:2] == b"PK"
    assert link.startswith(emulator.base_url)
    # Every run-log line is in the task log once, as its own record on the run-log logger.
    log = emulator.run_log(job_id)
    records = run_log_records(output.out, log)
    assert len(records) == len(log)
    for record, line in zip(records, log, strict=True):
        assert f"{RUN_LOG_PREFIX}{line.strip()}" in record  # set apart from our own messages
    (post,) = emulator.record.requests("POST", "/api/compute-jobs")[-1:]
    assert post.data["headers"].get("connection-id")
    assert_no_secrets(output.out + output.err + repr(seen), emulator)


@pytest.mark.parametrize(
    ("dag_id", "expected"),
    [("t_failed", "ended with status FAILED"), ("t_model_error", "model status 'ERROR'")],
)
def test_a_failed_job_fails_the_task_with_a_clear_message(
    emulator: Emulator, dag_id: str, expected: str, capfd: pytest.CaptureFixture[str]
) -> None:
    run = getattr(DAGS, dag_id).test()
    output = capfd.readouterr()
    assert run.state == "failed"
    assert expected in output.out
    assert "run-log lines:" in output.out
    assert_no_secrets(output.out + output.err, emulator)


def test_a_rejected_request_fails_without_retrying(
    emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    run = DAGS.t_rejected.test()
    output = capfd.readouterr()
    assert run.state == "failed"
    assert "not retried" in output.out
    # retries=3, but the 422 was not retried: exactly one refused submission.
    assert jobs_of(emulator, "t_rejected") == []
    refused = [
        e
        for e in emulator.record.of_kind("http_response")
        if e.data["method"] == "POST" and e.data["status"] == 422
    ]
    assert len(refused) == 1


def test_execution_timeout_cancels_the_job(
    emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    run = DAGS.t_timeout.test()
    output = capfd.readouterr()
    assert run.state == "failed"
    (job_id,) = jobs_of(emulator, "t_timeout")
    assert emulator.wait_for_status(job_id, {"CANCELLED"}, timeout_seconds=5.0)
    assert "Cancelling Insight compute job" in output.out


def _set_task_state(dag_id: str, run_id: str, state: str) -> None:
    """What a user's "mark failed" does to the metadata DB (the API server writes the row)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .values(state=state)
        )


def test_on_kill_cancels_only_after_a_user_stopped_the_task(
    emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """What SIGTERM does to a task: on_kill runs while execute follows the job. While the task
    instance is still running in the metadata DB (a worker shutdown) the job is left alone; once
    its state says a user marked it failed, on_kill cancels the job."""
    DAGS.RUNNING.clear()
    seen: dict[str, str] = {}

    def kill_once_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = jobs_of(emulator, "t_kill")
            # A few lines in: execute is in its wait (no request to the supervisor under way).
            if DAGS.RUNNING and jobs and len(emulator.run_log(jobs[0])) >= 5:
                operator = DAGS.RUNNING[0]
                operator.on_kill()  # still running: a deploy's SIGTERM
                seen["after_first_kill"] = emulator.job(jobs[0])["status"]
                assert operator._ti is not None
                _set_task_state("t_kill", operator._ti.run_id, "failed")
                operator.on_kill()  # the SIGTERM after a user marked the task failed
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_once_running, daemon=True)
    killer.start()
    run = DAGS.t_kill.test()
    killer.join(timeout=10)
    output = capfd.readouterr()
    (job_id,) = jobs_of(emulator, "t_kill")
    assert seen["after_first_kill"] == "EXECUTING"
    assert f"Not cancelling Insight compute job {job_id}: the task instance is still" in output.out
    assert "state 'running'" in output.out
    assert "state 'failed' in Airflow: a user stopped it" in output.out
    assert emulator.job(job_id)["status"] == "CANCELLED"
    deletes = [e.compute_job_id for e in emulator.record.of_kind("delete")]
    assert deletes.count(job_id) == 1
    # The follower saw the cancellation and failed the task with it.
    assert run.state == "failed"
    if (
        not CONSOLE_WITHOUT_LOGGER_NAMES
    ):  # 3.0's dag.test() shows the conflict of the state it then sets
        assert "ended with status CANCELLED" in output.out


def test_a_retry_reattaches_to_the_running_job(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    run = DAGS.t_reattach.test()
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    jobs = jobs_of(emulator, "t_reattach")
    assert len(jobs) == 1, jobs
    assert collected()["result"]["compute_job_id"] == jobs[0]
    assert "Re-attaching to Insight compute job" in output.out
    # The second try's log holds the whole run log (decision: forward again from line 0).
    log = emulator.run_log(jobs[0])
    assert len(run_log_records(output.out, log)) == len(log)
    assert_no_secrets(output.out + output.err + repr(collected()), emulator)
