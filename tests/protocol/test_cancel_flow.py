"""The one cancel decision (core): a finished job is left alone, else DELETE and a bounded wait."""

from __future__ import annotations

import pytest

from airflow_insight.protocol.cancel import (
    CancelEnd,
    CancelFlow,
    CancelResult,
    ReadStatus,
    SendDelete,
)


def test_a_job_that_already_ended_is_not_deleted() -> None:
    flow = CancelFlow("job-1", wait_seconds=10)
    assert flow.start() == ReadStatus()
    result = flow.status_read("COMPLETED", now=0.0)
    assert result == CancelResult("job-1", CancelEnd.ALREADY_ENDED, "COMPLETED")
    assert not result.cancelled
    assert (
        result.describe()
        == "Insight compute job job-1 already ended (COMPLETED): nothing to cancel"
    )


def test_a_running_job_is_deleted_then_read_until_it_ends() -> None:
    flow = CancelFlow("job-1", wait_seconds=10, poll_seconds=0.5)
    flow.start()
    assert flow.status_read("EXECUTING", now=0.0) == SendDelete()
    assert flow.deleted(now=1.0) == ReadStatus()
    assert flow.status_read("CANCELLING", now=1.1) == ReadStatus(0.5)
    result = flow.status_read("CANCELLED", now=1.7)
    assert result == CancelResult("job-1", CancelEnd.ENDED, "CANCELLED")
    assert result.cancelled
    assert result.describe() == "Insight compute job job-1 is now CANCELLED"


def test_the_wait_after_the_delete_is_bounded() -> None:
    flow = CancelFlow("job-1", wait_seconds=2)
    flow.start()
    flow.status_read("EXECUTING", now=0.0)
    flow.deleted(now=0.0)
    assert isinstance(flow.status_read("CANCELLING", now=1.9), ReadStatus)
    result = flow.status_read("CANCELLING", now=2.0)
    assert result == CancelResult("job-1", CancelEnd.PENDING, "CANCELLING")
    assert result.cancelled
    assert "did not reach CANCELLED in time (last seen CANCELLING)" in result.describe()


def test_without_a_wait_the_taken_delete_is_the_end() -> None:
    flow = CancelFlow("job-1", wait_seconds=0)
    flow.start()
    flow.status_read("QUEUED", now=0.0)
    result = flow.deleted(now=0.0)
    assert result == CancelResult("job-1", CancelEnd.ASKED, "QUEUED")
    assert result.cancelled


def test_an_unreadable_status_still_cancels_and_ends_the_wait() -> None:
    flow = CancelFlow("job-1", wait_seconds=10)
    flow.start()
    assert flow.status_unreadable("connection refused") == SendDelete()
    flow.deleted(now=0.0)
    result = flow.status_unreadable("read timed out")
    assert result == CancelResult("job-1", CancelEnd.PENDING, None, "read timed out")


@pytest.mark.parametrize("deleted_first", [False, True])
def test_a_job_the_server_does_not_have_is_gone(deleted_first: bool) -> None:
    flow = CancelFlow("job-1", wait_seconds=10)
    flow.start()
    if deleted_first:
        flow.status_read("EXECUTING", now=0.0)
        flow.deleted(now=0.0)
    result = flow.status_read(None, now=0.1)
    assert result.end is CancelEnd.GONE
    assert result.describe() == "Insight compute job job-1 is gone"


def test_a_failed_delete_says_so_at_error_level() -> None:
    flow = CancelFlow("job-1", wait_seconds=10)
    flow.start()
    flow.status_read("EXECUTING", now=0.0)
    result = flow.delete_failed("HTTP 500")
    assert result.end is CancelEnd.FAILED and not result.cancelled
    assert result.log_level > CancelResult("job-1", CancelEnd.ENDED).log_level
    assert result.describe() == "Could not cancel Insight compute job job-1: HTTP 500"
