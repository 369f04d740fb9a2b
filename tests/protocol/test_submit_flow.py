"""The submit flow (§A8, §B9 #16) from literal answers: never a second job, the 415 fallback,
a 409 to a resend, bounded resends."""

from __future__ import annotations

import pytest

from airflow_insight.exceptions import (
    ConnectionLost,
    InsightTimeout,
    LocalProtocolError,
    ServerError,
    SubmitRejected,
)
from airflow_insight.protocol.submit import (
    FALLBACK_PART_TYPE,
    Created,
    Fail,
    Found,
    LookUp,
    Send,
    SubmitFlow,
    Wait,
)
from airflow_insight.protocol.wire import V2_JSON

JOB = {"id": "job-1", "status": "QUEUED"}
RESENDS = frozenset({429, 502, 503, 504})


def flow(*, max_attempts: int = 3, backoff: float = 0.5) -> SubmitFlow:
    """A flow whose retry policy allows ``max_attempts`` sends, ``backoff`` apart (or the
    server's ``Retry-After``)."""

    def next_delay(attempt: int, retry_after_seconds: float | None) -> float | None:
        if attempt >= max_attempts:
            return None
        return backoff if retry_after_seconds is None else retry_after_seconds

    return SubmitFlow("job-1", next_delay=next_delay, resend_statuses=RESENDS)


def server_error(status: int, retry_after_seconds: float | None = None) -> ServerError:
    return ServerError(
        f"HTTP {status}", status_code=status, retry_after_seconds=retry_after_seconds
    )


def test_a_created_answer_ends_it_with_one_send() -> None:
    submit = flow()
    assert submit.start() == Send(V2_JSON, attempt=1)
    assert submit.answered(201, None) == Created()


def test_a_415_is_resent_once_with_the_plain_json_part_type() -> None:
    submit = flow()
    submit.start()
    again = submit.answered(415, SubmitRejected("HTTP 415", status_code=415))
    assert isinstance(again, Send)
    assert again.part_type == FALLBACK_PART_TYPE
    assert "415" in again.note
    refused = SubmitRejected("HTTP 415 again", status_code=415)
    assert submit.answered(415, refused) == Fail(refused)  # no third part type


def test_a_503_reads_the_job_back_and_takes_it_when_there() -> None:
    submit = flow()
    submit.start()
    assert submit.answered(503, server_error(503)) == LookUp()
    found = submit.found(JOB)
    assert isinstance(found, Found)
    assert found.document is JOB
    assert "after HTTP 503" in found.note


def test_a_503_and_no_job_waits_then_resends_until_the_bound() -> None:
    submit = flow(max_attempts=2)
    submit.start()
    first = server_error(503, retry_after_seconds=2.0)
    assert submit.answered(503, first) == LookUp()
    assert submit.missing() == Wait(2.0, attempt=1, why="HTTP 503")  # the server's Retry-After
    assert submit.waited() == Send(V2_JSON, attempt=2)
    second = server_error(503)
    assert submit.answered(503, second) == LookUp()
    assert submit.missing() == Fail(second)  # the bound: the last answer's error stands


def test_a_500_is_read_back_but_never_resent() -> None:
    submit = flow()
    submit.start()
    error = server_error(500)
    assert submit.answered(500, error) == LookUp()
    assert submit.missing() == Fail(error)


def test_no_answer_with_an_open_outcome_reads_the_job_back() -> None:
    submit = flow()
    submit.start()
    timeout = InsightTimeout("no answer within 30 s")
    assert submit.no_answer(timeout, outcome_unknown=True) == LookUp()
    assert submit.missing() == Wait(0.5, attempt=1, why="no answer within 30 s")
    assert submit.waited() == Send(V2_JSON, attempt=2)


def test_no_answer_that_never_reached_the_server_fails_at_once() -> None:
    submit = flow()
    submit.start()
    refused = ConnectionLost("connection refused")
    assert submit.no_answer(refused, outcome_unknown=False) == Fail(refused)


def test_a_409_to_a_resend_is_our_job_when_it_is_found() -> None:
    submit = flow()
    submit.start()
    submit.no_answer(InsightTimeout("slow proxy"), outcome_unknown=True)
    submit.missing()
    submit.waited()
    conflict = SubmitRejected("duplicate id", status_code=409)
    assert submit.answered(409, conflict) == LookUp()
    found = submit.found(JOB)
    assert isinstance(found, Found)
    assert "409 to a resend" in found.note


def test_a_409_to_a_resend_stands_when_the_job_is_not_there() -> None:
    submit = flow()
    submit.start()
    submit.answered(502, server_error(502))
    submit.missing()
    submit.waited()
    conflict = SubmitRejected("duplicate id", status_code=409)
    assert submit.answered(409, conflict) == LookUp()
    assert submit.missing() == Fail(conflict)


def test_a_409_to_the_first_send_is_a_duplicate_id() -> None:
    submit = flow()
    submit.start()
    conflict = SubmitRejected("duplicate id", status_code=409)
    assert submit.answered(409, conflict) == Fail(conflict)


def test_answers_the_flow_did_not_ask_for_are_driver_bugs() -> None:
    submit = flow()
    submit.start()
    with pytest.raises(LocalProtocolError):
        submit.found(JOB)  # no read-back was asked for
    with pytest.raises(LocalProtocolError):
        submit.answered(422, None)  # an error status without its error
