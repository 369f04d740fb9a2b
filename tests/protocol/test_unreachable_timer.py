"""The one unreachable rule (core): an outage counts from the first unanswered call."""

from __future__ import annotations

from airflow_insight.exceptions import ServerUnreachable
from airflow_insight.protocol.events import ServerAnswersAgain
from airflow_insight.protocol.unreachable import UnreachableTimer


def test_an_outage_is_said_with_its_deadline_then_expires_at_the_limit() -> None:
    timer = UnreachableTimer("https://insight.example", limit_seconds=60)
    first = timer.unanswered(100.0, "connection refused")
    assert first.first and first.silent_seconds == 0 and first.gives_up_in_seconds == 60
    assert "stopped answering (connection refused)" in first.describe()
    assert not timer.expired(159.9)
    later = timer.unanswered(130.0, "connection refused")
    assert not later.first and later.silent_seconds == 30 and later.gives_up_in_seconds == 30
    assert timer.expired(160.0)
    error = timer.give_up(160.0, "job-1", "connection refused")
    assert isinstance(error, ServerUnreachable) and not error.permanent
    assert "for 60 s" in str(error) and "job-1" in str(error)


def test_an_answer_ends_the_outage_once_and_restarts_the_count() -> None:
    timer = UnreachableTimer("srv", limit_seconds=60)
    assert timer.answered(0.0) is None
    timer.unanswered(10.0, "refused")
    assert timer.in_outage
    assert timer.answered(25.0) == ServerAnswersAgain("srv", 15.0)
    assert timer.answered(26.0) is None
    assert timer.unanswered(100.0, "refused").first
    assert not timer.expired(159.0)


def test_without_a_limit_the_wait_never_gives_up() -> None:
    timer = UnreachableTimer("srv", limit_seconds=None)
    report = timer.unanswered(0.0, "refused")
    assert report.gives_up_in_seconds is None
    assert "no unreachable limit is set" in report.describe()
    assert not timer.expired(1e9)
