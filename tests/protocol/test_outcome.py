"""JobOutcome: the §A7 verdict, the exception it maps to, and the trigger payload round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from airflow_insight.exceptions import JobCancelled, JobFailed, LocalProtocolError
from airflow_insight.protocol.outcome import JobOutcome, Verdict


def outcome(status: str, model_status: str | None = "OK", **kw: object) -> JobOutcome:
    return JobOutcome("job-7", status, model_status, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "model_status", "verdict"),
    [
        ("COMPLETED", "OK", Verdict.SUCCESS),
        ("COMPLETED", None, Verdict.SUCCESS_WITHOUT_MODEL_STATUS),
        ("COMPLETED", "MATHERR", Verdict.FAILURE),
        ("COMPLETED", "ok", Verdict.FAILURE),
        ("FAILED", "OK", Verdict.FAILURE),
        ("FAILED", None, Verdict.FAILURE),
        ("CANCELLED", None, Verdict.CANCELLED),
        ("CANCELLED", "OK", Verdict.CANCELLED),
        ("DELETED", None, Verdict.CANCELLED),
        ("EXECUTING", None, Verdict.FAILURE),
        ("SOMETHING_NEW", None, Verdict.FAILURE),
    ],
)
def test_verdict_for_every_terminal_status(
    status: str, model_status: str | None, verdict: Verdict
) -> None:
    result = outcome(status, model_status)
    assert result.verdict() is verdict
    assert result.succeeded() is verdict.succeeded
    error = result.error()
    if verdict.succeeded:
        assert error is None
        result.raise_for_failure()
    else:
        assert isinstance(error, JobFailed)
        assert isinstance(error, JobCancelled) is (verdict is Verdict.CANCELLED)
        assert (error.compute_job_id, error.status, error.model_status) == (
            "job-7",
            status,
            model_status,
        )
        with pytest.raises(type(error)):
            result.raise_for_failure()


def test_custom_accepted_model_statuses() -> None:
    accepted = {"OK", "STOP"}
    assert outcome("COMPLETED", "STOP").verdict(accepted) is Verdict.SUCCESS
    assert outcome("COMPLETED", "STOP").verdict() is Verdict.FAILURE
    assert outcome("COMPLETED", "OK").verdict({"STOP"}) is Verdict.FAILURE
    message = outcome("COMPLETED", "ERROR").failure_message(accepted)
    assert "accepted model statuses: OK, STOP" in message


def test_null_model_status_at_completed_is_a_warning() -> None:
    assert outcome("COMPLETED", None).warning() is not None
    assert "job-7" in (outcome("COMPLETED", None).warning() or "")
    assert outcome("COMPLETED", "OK").warning() is None
    assert outcome("FAILED", None).warning() is None


def test_failure_message_names_job_status_model_status_and_last_lines() -> None:
    tail = ("Presolve finished", "x" * 1000, "Problem is infeasible")
    error = outcome("FAILED", "MATHERR", run_log_tail=tail, execution_attempts=2).error()
    assert error is not None
    message = str(error)
    assert "'job-7'" in message and "FAILED" in message and "'MATHERR'" in message
    assert "Last 3 run-log lines" in message
    assert "Problem is infeasible" in message
    assert "after 2 execution attempts" in message
    assert "x" * 1000 not in message  # long lines are clipped
    assert "…" in message


def test_failure_message_without_lines_and_with_detail() -> None:
    message = outcome("DELETED", None, detail="gone (HTTP 404)").failure_message()
    assert "model status null" in message
    assert "gone (HTTP 404)" in message
    assert "No run-log lines were received" in message
    assert "not a terminal status" in outcome("EXECUTING", None).failure_message()


def test_round_trip_through_json() -> None:
    original = JobOutcome(
        "job-7",
        "COMPLETED",
        "OK",
        execution_attempts=2,
        result_url="/api/scenarios/s/attachments/r/file",
        run_log_url="/api/scenarios/s/run-log",
        last_run_log_line=41,
        run_log_tail=("a", "b"),
        detail=None,
    )
    payload = json.loads(json.dumps(original.to_dict()))
    assert JobOutcome.from_dict(payload) == original
    complete = dataclasses.replace(original, run_log_complete=True)
    payload = json.loads(json.dumps(complete.to_dict()))
    assert payload["run_log_complete"] is True
    assert JobOutcome.from_dict(payload) == complete
    # A payload written before the field existed reads as "not known complete".
    del payload["run_log_complete"]
    assert JobOutcome.from_dict(payload) == original
    minimal = JobOutcome.from_dict({"compute_job_id": "j", "status": "FAILED", "extra": 1})
    assert minimal == JobOutcome("j", "FAILED")


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "FAILED"},
        {"compute_job_id": 3, "status": "FAILED"},
        {"compute_job_id": "j", "status": "FAILED", "model_status": 5},
        {"compute_job_id": "j", "status": "FAILED", "execution_attempts": "2"},
        {"compute_job_id": "j", "status": "FAILED", "last_run_log_line": True},
        {"compute_job_id": "j", "status": "FAILED", "run_log_complete": "yes"},
    ],
)
def test_from_dict_rejects_payloads_that_are_not_outcomes(payload: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        JobOutcome.from_dict(payload)


def test_from_job_document_reads_both_spellings_and_defaults() -> None:
    document = {
        "id": "j1",
        "status": "COMPLETED",
        "modelStatus": "OK",
        "executionAttempts": 2,
        "resultsUrl": "/api/results/1",
        "runLogUrl": "/api/runlog/1",
        "unknownField": 1,
    }
    outcome = JobOutcome.from_job_document("j1", document)
    assert outcome == JobOutcome(
        compute_job_id="j1",
        status="COMPLETED",
        model_status="OK",
        execution_attempts=2,
        result_url="/api/results/1",
        run_log_url="/api/runlog/1",
    )
    assert outcome.succeeded()
    bare = JobOutcome.from_job_document("j2", {"executionAttempts": True, "resultUrl": 3})
    assert (bare.status, bare.execution_attempts, bare.result_url) == ("QUEUED", 0, None)


def test_run_log_forwarded_through_needs_complete_and_the_same_last_line() -> None:
    complete = outcome("COMPLETED", last_run_log_line=9, run_log_complete=True)
    assert complete.run_log_forwarded_through(9)
    assert not complete.run_log_forwarded_through(8)  # the reader missed line 9
    assert not complete.run_log_forwarded_through(10)
    assert not outcome("COMPLETED", last_run_log_line=9).run_log_forwarded_through(9)
