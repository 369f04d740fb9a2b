"""The one unreachable rule (core): a poker counts an outage from its first unanswered call,
a listener from the last answer."""

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


def test_a_listener_counts_the_silence_from_the_last_answer() -> None:
    timer = UnreachableTimer("srv", limit_seconds=60, listening=True)
    timer.listen(0.0)
    assert timer.deadline() == 60.0  # a silent socket fails too, with no call unanswered
    assert timer.answered(20.0) is None
    first = timer.unanswered(50.0, "refused")
    assert first.first and first.silent_seconds == 30.0 and first.gives_up_in_seconds == 30.0
    assert not timer.unanswered(70.0).first
    assert not timer.expired(79.9) and timer.expired(80.0)
    message = str(timer.give_up(80.0, "job-1"))
    assert "for 60 s (neither the progress socket nor REST)" in message and "job-1" in message
    assert timer.answered(85.0) == ServerAnswersAgain("srv", 65.0)
    assert timer.deadline() == 145.0


def test_a_listener_that_stops_counts_nothing_until_it_listens_again() -> None:
    timer = UnreachableTimer("srv", limit_seconds=60, listening=True)
    timer.listen(0.0)
    timer.unanswered(10.0, "refused")
    timer.stop()
    assert not timer.in_outage and timer.deadline() is None and not timer.expired(1e9)
    timer.listen(500.0)
    assert timer.deadline() == 560.0 and timer.answered(501.0) is None
