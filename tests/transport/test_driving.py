"""What both WebSocket drivers share: the wait rule, the end bookkeeping, call answers (no
sockets, no clock)."""

from __future__ import annotations

import pytest

from airflow_insight.exceptions import AuthenticationError, LocalProtocolError, PermissionDenied
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.transport.driving import (
    MAX_WAIT_SECONDS,
    CallAnswer,
    Ends,
    perform,
    receive_timeout,
)


@pytest.mark.parametrize(
    ("deadlines", "floor", "expected"),
    [
        ((None,), 0.0, MAX_WAIT_SECONDS),  # nothing scheduled: the longest single wait
        ((102.5,), 0.0, 2.5),  # until the core's deadline
        ((105.0, 101.0), 0.0, 1.0),  # the earliest of the core's deadline and the caller's end
        ((None, 101.0), 0.0, 1.0),
        ((99.0,), 0.0, 0.0),  # overdue: do not wait
        ((99.0,), 0.001, 0.001),  # ... unless a floor is asked for (a zero recv timeout)
        ((1000.0,), 0.0, MAX_WAIT_SECONDS),  # far away: capped
    ],
)
def test_receive_timeout(
    deadlines: tuple[float | None, ...], floor: float, expected: float
) -> None:
    assert receive_timeout(100.0, *deadlines, floor_seconds=floor) == pytest.approx(expected)


def _finished(job_id: str) -> ev.JobFinished:
    return ev.JobFinished(JobOutcome(job_id, "COMPLETED", "OK"))


def test_ends_keep_each_jobs_end_until_it_is_unfollowed() -> None:
    ends = Ends()
    with pytest.raises(LocalProtocolError, match="not followed"):
        ends.ended("job-1")
    ends.follow("job-1")
    ends.follow("job-2")
    assert not ends.ended("job-1")
    assert not ends.record(ev.PingAnswered())  # not an end
    assert ends.record(_finished("job-1"))
    refused = PermissionDenied("HTTP 403")
    assert ends.record(ev.FollowFailed("job-2", refused))
    assert ends.ended("job-1") and ends.outcome("job-1").status == "COMPLETED"
    with pytest.raises(PermissionDenied):
        ends.outcome("job-2")
    assert ends.session_error is None
    ends.follow("job-1")  # followed afresh: the earlier end is forgotten
    assert not ends.ended("job-1")
    ends.unfollow("job-2")
    with pytest.raises(LocalProtocolError, match="not followed"):
        ends.ended("job-2")


def test_a_failed_session_is_kept_for_open_and_a_bug_ends_every_job() -> None:
    ends = Ends()
    ends.follow("job-1")
    no_token = AuthenticationError("HTTP 401")
    assert ends.record(ev.FollowFailed(None, no_token))
    assert ends.session_error is no_token and not ends.ended("job-1")
    bug = LocalProtocolError("internal error")
    ends.fail_all(bug)
    with pytest.raises(LocalProtocolError, match="internal error"):
        ends.outcome("job-1")


def test_a_call_answer_goes_back_by_id_as_a_result_or_an_error() -> None:
    ok = perform(7, lambda: "conn-1")
    assert ok == CallAnswer(7, "conn-1")

    def refused() -> str:
        raise PermissionDenied("HTTP 403")

    failed = perform(8, refused)
    assert failed.call_id == 8 and isinstance(failed.error, PermissionDenied)
