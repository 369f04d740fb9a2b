"""The session's transition table, the calls by id, and the decisions made on their answers.

Frames are literal wire text (as the protocol reference shows them), never made by our encoder.
"""

from __future__ import annotations

import pytest
from core_channels import TwoChannels

from airflow_insight.exceptions import (
    AuthenticationError,
    InsightTimeout,
    JobNotFound,
    LocalProtocolError,
    PermissionDenied,
    ServerError,
    ServerUnreachable,
)
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.jobs import PHASE_TRANSITIONS, FollowedJob, Phase
from airflow_insight.protocol.runlog import RunLog
from airflow_insight.protocol.session import TRANSITIONS, Session, SessionInput, SessionState
from airflow_insight.protocol.tokens import Token

CONFIG = FollowerConfig(
    silence_limit_seconds=10.0, jitter_fraction=0.0, unreachable_limit_seconds=60.0
)
TOKEN = Token("s3cr3t-token", expires_at=900.0, lifetime_seconds=900.0)
EXECUTING = (
    '{"computeJobId":"job-1","messageType":"JOB_STATUS_UPDATED","messagePayload":'
    '{"status":"EXECUTING","modelStatus":null,"executionAttempts":1,'
    '"runLogUrl":"/api/scenarios/s1/run-log"}}'
)


def started(follower: TwoChannels) -> ev.ReconnectDue:
    """Answer the first token; return the socket call that follows it."""
    (mint,) = follower.start(0.0)
    assert mint == ev.TokenRefreshDue(fresh=False)
    (connect,) = [e for e in follower.call_succeeded(mint.call_id, TOKEN, 0.0)]
    assert isinstance(connect, ev.ReconnectDue) and connect.token is TOKEN
    return connect


@pytest.mark.parametrize("state", list(SessionState))
@pytest.mark.parametrize("event", list(SessionInput))
def test_every_move_not_in_the_table_raises(state: SessionState, event: SessionInput) -> None:
    session = Session(CONFIG)
    session.state = state
    if (state, event) in TRANSITIONS:
        session.move(event)
        assert session.state is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(LocalProtocolError, match=event.value):
            session.move(event)


def test_a_second_socket_reported_open_is_a_driver_bug() -> None:
    session = Session(CONFIG)
    session.wanted(0.0)
    assert session.due(0.0)
    session.opened("c1", 0.0)
    with pytest.raises(LocalProtocolError, match="opened while open"):
        session.opened("c2", 0.0)


def test_a_socket_opens_only_when_asked_for() -> None:
    with pytest.raises(LocalProtocolError, match="opened while idle"):
        Session(CONFIG).opened("c1", 0.0)


def test_an_answer_for_a_call_never_asked_is_a_driver_bug() -> None:
    with pytest.raises(LocalProtocolError, match="not outstanding"):
        TwoChannels(CONFIG).call_succeeded(42, None, 0.0)


def test_the_first_token_opens_the_socket_and_a_failed_one_fails_the_session() -> None:
    follower = TwoChannels(CONFIG)
    connect = started(follower)
    follower.call_succeeded(connect.call_id, "conn-1", 0.1)
    assert follower.is_open and follower.connection_id == "conn-1"

    refused = TwoChannels(CONFIG)
    (mint,) = refused.start(0.0)
    error = InsightTimeout("no answer")  # not permanent, and still the end: see the docstring
    assert refused.call_failed(mint.call_id, error, 5.0) == [ev.FollowFailed(None, error)]


def test_a_refused_handshake_gets_one_fresh_token_then_backs_off() -> None:
    follower = TwoChannels(CONFIG)
    connect = started(follower)
    refused = AuthenticationError("HTTP 401")
    (fresh,) = follower.call_failed(connect.call_id, refused, 0.1)
    assert fresh == ev.TokenRefreshDue(fresh=True)
    (again,) = follower.call_succeeded(fresh.call_id, TOKEN, 0.2)
    assert isinstance(again, ev.ReconnectDue)
    events = follower.call_failed(again.call_id, refused, 0.3)
    assert [type(e) for e in events] == [ev.CallFailed]  # no third try: back off
    assert follower.state is SessionState.BACKING_OFF


def test_what_a_failed_check_means_is_decided_once() -> None:
    follower = TwoChannels(CONFIG)
    follower.call_succeeded(started(follower).call_id, "conn-1", 0.0)
    follower.follow("job-1", now=0.0)
    follower.follow("job-2", now=0.0)
    follower.data_to_send()
    checks = {e.job_id: e for e in follower.tick(10.0) if isinstance(e, ev.ReconcileDue)}
    gone = follower.call_failed(
        checks["job-1"].call_id, JobNotFound("404", compute_job_id="job-1"), 10.1
    )
    assert [type(e) for e in gone] == [ev.StatusChanged, ev.JobFinished]
    denied = PermissionDenied("HTTP 403")
    assert follower.call_failed(checks["job-2"].call_id, denied, 10.2) == [
        ev.FollowFailed("job-2", denied)
    ]
    assert not follower.active


def test_a_server_that_answers_nothing_fails_each_job_after_the_limit() -> None:
    follower = TwoChannels(CONFIG, server="http://127.0.0.1:9")
    follower.call_succeeded(started(follower).call_id, "conn-1", 0.0)
    follower.follow("job-1", now=0.0)
    follower.receive_text(EXECUTING, 5.0)
    follower.connection_lost(6.0)
    now, failures = 6.0, []
    while not failures:
        deadline = follower.next_deadline()
        assert deadline is not None and deadline <= 5.0 + 60.0
        now = deadline
        for event in follower.tick(now):
            if isinstance(event, ev.FollowFailed):
                failures.append(event)
            elif isinstance(event, ev.ReconcileDue | ev.ReconnectDue | ev.TokenRefreshDue):
                # Nothing answers: every call fails on the network.
                follower.call_failed(event.call_id, InsightTimeout("timed out"), now)
    (failed,) = failures
    assert now == pytest.approx(65.0)
    assert isinstance(failed.error, ServerUnreachable) and not failed.error.permanent
    message = str(failed.error)
    assert "job-1" in message and "http://127.0.0.1:9" in message and "60 s" in message


def test_an_http_error_is_an_answer_for_the_unreachable_limit() -> None:
    follower = TwoChannels(CONFIG)
    follower.call_succeeded(started(follower).call_id, "conn-1", 0.0)
    follower.follow("job-1", now=0.0)
    follower.connection_lost(1.0)
    check = next(e for e in follower.tick(50.0) if isinstance(e, ev.ReconcileDue))
    follower.call_failed(check.call_id, ServerError("HTTP 503", status_code=503), 50.0)
    assert not any(isinstance(e, ev.FollowFailed) for e in follower.tick(61.0))
    assert follower.next_deadline() is not None


def test_the_follower_repr_hides_the_token_it_holds() -> None:
    follower = TwoChannels(CONFIG)
    follower.call_succeeded(started(follower).call_id, "conn-1", 0.0)
    assert follower.session.token is TOKEN  # it does hold the secret...
    assert "s3cr3t" not in repr(follower) + repr(follower.session)  # ...and never shows it
    connect = started(TwoChannels(CONFIG))
    assert "s3cr3t" not in repr(connect) + connect.describe()


CURRENT_COMPLETED = (
    '{"computeJobId":"job-1","messageType":"CURRENT_JOB_STATUS","messagePayload":'
    '{"status":"COMPLETED","modelStatus":"OK","executionAttempts":1,'
    '"runLogUrl":"/api/scenarios/s1/run-log"}}'
)
REPLAYED_LINES = (
    '{"computeJobId":"job-1","messageType":"RUNLOG_UPDATED","messagePayload":'
    '{"startLine":0,"endLines":1,"lines":["a","b"]}}'
)
REPLAY_COMPLETED = (
    '{"computeJobId":"job-1","messageType":"RUNLOG_COMPLETED","messagePayload":{"totalLines":2}}'
)


def test_a_job_found_ended_at_subscribe_waits_for_its_replay_before_any_fetch() -> None:
    follower = TwoChannels(CONFIG)
    follower.call_succeeded(started(follower).call_id, "conn-1", 0.0)
    follower.follow("job-1", now=0.0)
    events = follower.receive_text(CURRENT_COMPLETED, 0.1)
    assert [type(e) for e in events] == [ev.StatusChanged]  # no fetch asked for yet
    follower.receive_text(REPLAYED_LINES, 0.15)
    (finished,) = follower.receive_text(REPLAY_COMPLETED, 0.2)
    assert isinstance(finished, ev.JobFinished) and finished.outcome.run_log_complete
    # Without the replay, the fetch comes after the grace (bounded, never a wait for ever).
    other = TwoChannels(CONFIG)
    other.call_succeeded(started(other).call_id, "conn-1", 0.0)
    other.follow("job-1", now=0.0)
    other.receive_text(CURRENT_COMPLETED, 0.1)
    assert other.tick(1.0) == []
    assert [type(e) for e in other.tick(1.1)] == [ev.RunLogFetchDue]


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("target", list(Phase))
def test_every_phase_move_not_in_the_table_raises(phase: Phase, target: Phase) -> None:
    job = FollowedJob("job-1", RunLog("job-1"), next_check_at=0.0, phase=phase)
    if target in PHASE_TRANSITIONS[phase]:
        job.move(target)
        assert job.phase is target
    else:
        with pytest.raises(LocalProtocolError, match=f"from {phase.value} to {target.value}"):
            job.move(target)


@pytest.mark.parametrize(
    ("event", "audience"),
    [
        (ev.StatusChanged("job-1", "EXECUTING", None, 1), "job-1"),
        (ev.CallFailed("Checking compute job job-1 over REST", "503", "job-1"), "job-1"),
        (ev.ReconnectDue(1), ev.Audience.EVERY_JOB),
        (ev.ReconnectDue(1, quiet=True), None),  # an outage line says it instead
        (ev.CallFailed("Opening the socket", "503", for_every_job=True), ev.Audience.EVERY_JOB),
        (ev.CallFailed("Opening the socket", "refused"), None),
        (ev.ErrorReceived(None, "INVALID_TOKEN", "expired"), ev.Audience.EVERY_JOB),
        (ev.MessageRejected("not JSON"), ev.Audience.EVERY_JOB),
        (ev.FollowFailed(None, ServerError("HTTP 500", status_code=500)), ev.Audience.EVERY_JOB),
        (ev.ServerUnanswered("s", 1.0, None, None, first=True), ev.Audience.EVERY_JOB),
        (ev.ServerAnswersAgain("s", 1.0), ev.Audience.EVERY_JOB),
        (ev.PingAnswered(), None),
        (ev.MessageIgnored("unknown type"), None),
        (ev.TokenRefreshDue(), None),
    ],
)
def test_who_hears_of_an_event_is_its_job_or_its_flag(
    event: ev.Event, audience: str | ev.Audience | None
) -> None:
    assert ev.audience(event) == audience


def test_a_failed_socket_call_reaches_every_job_unless_an_outage_says_it() -> None:
    follower = TwoChannels(CONFIG)
    connect = started(follower)
    follower.follow("job-1", now=0.0)
    (answered,) = follower.call_failed(
        connect.call_id, ServerError("HTTP 502", status_code=502), 0.1
    )
    assert ev.audience(answered) is ev.Audience.EVERY_JOB
    (again,) = [e for e in follower.tick(10.0) if isinstance(e, ev.ReconnectDue)]
    silent = follower.call_failed(again.call_id, InsightTimeout("no answer"), 10.1)
    outage, failed = silent
    assert isinstance(outage, ev.ServerUnanswered) and isinstance(failed, ev.CallFailed)
    assert ev.audience(outage) is ev.Audience.EVERY_JOB and ev.audience(failed) is None
