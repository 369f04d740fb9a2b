"""The session state machine, driven by scripted message texts and an explicit clock."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import logging
import random
from collections.abc import Sequence
from typing import Any, TypeVar

import pytest
from core_channels import TwoChannels

from airflow_insight.exceptions import (
    ConfigurationError,
    JobNotFound,
    LocalProtocolError,
    ServerError,
)
from airflow_insight.protocol import events as ev
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome, Verdict
from airflow_insight.protocol.tokens import Token

T = TypeVar("T")

RUN_LOG_URL = "/api/scenarios/s1/run-log"
RESULT_URL = "/api/scenarios/s1/attachments/r1/file"
CONFIG = FollowerConfig(
    silence_limit_seconds=10.0,
    reconnect_initial_delay_seconds=0.5,
    reconnect_max_delay_seconds=4.0,
    reconnect_multiplier=2.0,
    jitter_fraction=0.2,
    unreachable_limit_seconds=None,  # Tested on its own below.
)


# ----------------------------------------------------------------------------- script helpers


def wire(message_type: str, payload: Any, job_id: str | None = None) -> str:
    """A server frame as the server writes it (keys as in the protocol reference, §A6)."""
    document: dict[str, Any] = {} if job_id is None else {"computeJobId": job_id}
    document |= {"messageType": message_type, "messagePayload": payload}
    return json.dumps(document, ensure_ascii=False)


def status(
    job_id: str,
    value: str,
    model_status: str | None = None,
    *,
    attempts: int | None = 1,
    run_log_url: str | None = RUN_LOG_URL,
    result_url: str | None = None,
    current: bool = False,
    legacy: bool = False,
) -> str:
    """A ``JOB_STATUS_UPDATED`` (or ``CURRENT_JOB_STATUS``) frame; ``legacy``: 2020 field names."""
    payload: dict[str, Any] = {
        "status": value,
        "modelStatus": model_status,
        "executionAttempts": attempts,
        "payloadUrl": None,
        "runLogUrl": run_log_url,
    }
    if legacy:
        payload |= {"resultsUrl": result_url, "metricsUrl": None, "prettyStatus": value.title()}
    else:
        payload |= {"resultUrl": result_url, "jobMetricsUrl": None}
    return wire("CURRENT_JOB_STATUS" if current else "JOB_STATUS_UPDATED", payload, job_id)


def run_log(
    job_id: str,
    start: int,
    lines: Sequence[str],
    *,
    end: int | None = None,
    legacy: bool = False,
) -> str:
    """A ``RUNLOG_UPDATED`` frame; ``legacy``: the end line spelled ``endLine``."""
    last = end if end is not None else start + len(lines) - 1
    payload = {"startLine": start, "endLine" if legacy else "endLines": last, "lines": list(lines)}
    return wire("RUNLOG_UPDATED", payload, job_id)


def numbered(count: int, start: int = 0) -> list[str]:
    return [f"line {n}" for n in range(start, start + count)]


def sent(follower: TwoChannels) -> list[m.ClientMessage]:
    return [m.decode_client_message(text) for text in follower.data_to_send()]


def of_type(events: Sequence[object], kind: type[T]) -> list[T]:
    return [event for event in events if isinstance(event, kind)]


def forwarded(events: Sequence[object]) -> list[str]:
    return [line for batch in of_type(events, ev.RunLogLines) for line in batch.lines]


#: A token that never comes due in these tests (the token tests use their own).
LASTING_TOKEN = Token("tok-0", expires_at=1e9, lifetime_seconds=1e9)
#: The follower's next deadline when nothing but that token's refresh is scheduled.
TOKEN_DUE = LASTING_TOKEN.refresh_due_at


def tokened(
    config: FollowerConfig = CONFIG, token: Token = LASTING_TOKEN, **kwargs: Any
) -> TwoChannels:
    """A follower holding a token, as after the driver answered its first token call (the
    socket call that follows it is outstanding)."""
    follower = TwoChannels(config, **kwargs)
    follower.start(0.0)
    follower.answer(ev.TokenRefreshDue, token, 0.0)
    return follower


def opened(
    *job_ids: str, config: FollowerConfig = CONFIG, token: Token = LASTING_TOKEN
) -> TwoChannels:
    """A follower with its socket open, following ``job_ids``."""
    follower = tokened(config, token)
    follower.answer(ev.ReconnectDue, "conn-1", 0.0)
    for job_id in job_ids:
        follower.follow(job_id, now=0.0)
    follower.data_to_send()
    return follower


def reconnect_due(follower: TwoChannels) -> float:
    """Tick deadline after deadline until the core asks for a socket; when it did."""
    while True:
        now = follower.next_deadline()
        assert now is not None
        if of_type(follower.tick(now), ev.ReconnectDue):
            return now


def feed(follower: TwoChannels, texts: Sequence[str], now: float = 1.0) -> list[ev.Event]:
    events: list[ev.Event] = []
    for text in texts:
        events.extend(follower.receive_text(text, now))
    return events


# ----------------------------------------------------------------------------- a normal run


def test_normal_run_forwards_each_line_once_and_finishes() -> None:
    follower = tokened()
    follower.answer(ev.ReconnectDue, "conn-1", 0.0)
    assert sent(follower) == []
    follower.follow("job-1", now=0.0)
    # SUBSCRIBE right after following, even though the connection-id header was used (§B9 #5).
    assert sent(follower) == [m.Subscribe((m.Subscription("job-1", 0, -1),))]
    events = feed(
        follower,
        [
            status("job-1", "QUEUED", run_log_url=None),
            status("job-1", "EXECUTING"),
            run_log("job-1", 0, numbered(3)),
            run_log("job-1", 3, numbered(2, 3)),
            # No RUNLOG_COMPLETED (it may never come, §A6): the REST run log is fetched.
            status("job-1", "COMPLETED", "OK", result_url=RESULT_URL),
        ],
    )
    assert [e.status for e in of_type(events, ev.StatusChanged)] == [
        "QUEUED",
        "EXECUTING",
        "COMPLETED",
    ]
    assert forwarded(events) == numbered(5)
    assert events[-1] == ev.RunLogFetchDue("job-1", RUN_LOG_URL)
    assert follower.active and follower.following == ("job-1",)
    assert follower.subscriptions() == ()  # a finished job is not resubscribed

    fetch = follower.outstanding(ev.RunLogFetchDue, "job-1")
    final = follower.call_succeeded(fetch.call_id, "\n".join(numbered(5)) + "\n", 2.0)
    assert forwarded(final) == []
    (finished,) = final
    assert isinstance(finished, ev.JobFinished)
    assert finished.outcome == JobOutcome(
        "job-1",
        "COMPLETED",
        "OK",
        execution_attempts=1,
        result_url=RESULT_URL,
        run_log_url=RUN_LOG_URL,
        last_run_log_line=4,
        run_log_tail=tuple(numbered(5)),
        run_log_complete=True,
    )
    assert finished.outcome.verdict() is Verdict.SUCCESS
    assert not follower.active and follower.following == ()
    assert follower.next_deadline() == TOKEN_DUE
    # A call is answered once: a second answer is a driver bug, not a second end.
    with pytest.raises(LocalProtocolError, match="not outstanding"):
        follower.call_succeeded(fetch.call_id, "x", 3.0)
    with pytest.raises(LocalProtocolError, match="not outstanding"):
        follower.call_failed(fetch.call_id, ServerError("HTTP 503", status_code=503), 3.0)


def test_duplicate_statuses_and_batches_are_tolerated() -> None:
    follower = opened("job-1")
    batch = run_log("job-1", 0, numbered(2))
    events = feed(
        follower,
        [status("job-1", "EXECUTING"), status("job-1", "EXECUTING"), batch, batch],
    )
    assert len(of_type(events, ev.StatusChanged)) == 1
    assert forwarded(events) == numbered(2)


def test_out_of_order_batches_are_forwarded_in_order() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            run_log("job-1", 4, numbered(2, 4)),
            run_log("job-1", 0, numbered(2)),
            run_log("job-1", 2, numbered(2, 2)),
        ],
    )
    assert forwarded(events) == numbered(6)
    assert [b.first_line for b in of_type(events, ev.RunLogLines)] == [0, 2]


@pytest.mark.parametrize("legacy", [False, True])
def test_both_end_line_spellings_and_a_wrong_end_value(legacy: bool) -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            run_log("job-1", 0, numbered(3), legacy=legacy),
            # The end line disagrees with the lines: the lines are trusted.
            run_log("job-1", 3, numbered(2, 3), end=99, legacy=legacy),
            status("job-1", "COMPLETED", "OK", result_url=RESULT_URL, legacy=legacy),
        ],
    )
    assert forwarded(events) == numbered(5)
    finished = follower.answer(ev.RunLogFetchDue, "\n".join(numbered(5)), 2.0, "job-1")
    outcome = of_type(finished, ev.JobFinished)[0].outcome
    assert outcome.result_url == RESULT_URL
    assert outcome.last_run_log_line == 4


def test_gap_is_filled_from_the_final_run_log_without_duplicates() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            run_log("job-1", 0, numbered(2)),
            run_log("job-1", 5, numbered(2, 5)),
            status("job-1", "FAILED", "ERROR"),
        ],
    )
    assert forwarded(events) == numbered(2)
    final = follower.answer(ev.RunLogFetchDue, "\n".join(numbered(8)) + "\n", 2.0, "job-1")
    assert forwarded(final) == numbered(6, 2)
    outcome = of_type(final, ev.JobFinished)[0].outcome
    assert outcome.verdict() is Verdict.FAILURE
    assert outcome.last_run_log_line == 7
    assert "line 7" in str(outcome.error())


def test_run_log_unavailable_flushes_buffered_lines_with_a_gap() -> None:
    follower = opened("job-1")
    feed(follower, [run_log("job-1", 0, ["a"]), run_log("job-1", 3, ["d"])])
    feed(follower, [status("job-1", "COMPLETED", "OK")])
    final = follower.refuse(
        ev.RunLogFetchDue, ServerError("HTTP 503", status_code=503), 2.0, "job-1"
    )
    assert of_type(final, ev.RunLogGap) == [ev.RunLogGap("job-1", 1, 2)]
    assert forwarded(final) == ["d"]
    assert of_type(final, ev.JobFinished)[0].outcome.last_run_log_line == 3


def test_requeue_emits_a_marker_and_numbering_continues() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            status("job-1", "EXECUTING", attempts=1),
            run_log("job-1", 0, numbered(3)),
            status("job-1", "QUEUED", attempts=2),
            status("job-1", "EXECUTING", attempts=2),
            run_log("job-1", 3, numbered(2, 3)),
            status("job-1", "EXECUTING", attempts=1),  # stale: attempts never shrink
        ],
    )
    assert of_type(events, ev.JobRequeued) == [ev.JobRequeued("job-1", 2)]
    marker_at = events.index(ev.JobRequeued("job-1", 2))
    assert forwarded(events[:marker_at]) == numbered(3)
    assert forwarded(events[marker_at:]) == numbered(2, 3)
    assert [b.execution_attempts for b in of_type(events, ev.RunLogLines)] == [1, 2]
    assert follower.subscriptions() == (m.Subscription("job-1", 2, 4),)
    assert "attempt 2" in ev.JobRequeued("job-1", 2).describe()


def test_requeue_where_the_server_restarts_numbering() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            status("job-1", "EXECUTING", attempts=1),
            run_log("job-1", 0, numbered(3)),
            status("job-1", "EXECUTING", attempts=2),
            run_log("job-1", 0, ["second 0", "second 1"]),
        ],
    )
    assert forwarded(events) == [*numbered(3), "second 0", "second 1"]
    # SUBSCRIBE speaks the server's numbering for the current attempt.
    assert follower.subscriptions() == (m.Subscription("job-1", 2, 1),)


def test_first_terminal_status_wins() -> None:
    follower = opened("job-1")
    (check,) = follower.tick(10.0)  # a REST check is out when the statuses arrive
    events = feed(
        follower,
        [
            status("job-1", "COMPLETED", None, result_url=None),
            status("job-1", "EXECUTING"),
            status("job-1", "CANCELLED"),
            # The same terminal status again fills in fields that were missing.
            status("job-1", "COMPLETED", "OK", result_url=RESULT_URL),
        ],
        now=11.0,
    )
    assert [e.status for e in of_type(events, ev.StatusChanged)] == ["COMPLETED"]
    assert len(of_type(events, ev.MessageIgnored)) == 2
    assert len(of_type(events, ev.RunLogFetchDue)) == 1
    gone = JobNotFound("404", compute_job_id="job-1")
    assert follower.call_failed(check.call_id, gone, 12.0) == []  # terminal already seen
    outcome = of_type(
        follower.refuse(ev.RunLogFetchDue, ServerError("HTTP 503", status_code=503), 12.0, "job-1"),
        ev.JobFinished,
    )[0].outcome
    assert (outcome.status, outcome.model_status, outcome.result_url) == (
        "COMPLETED",
        "OK",
        RESULT_URL,
    )
    late = feed(follower, [status("job-1", "EXECUTING"), run_log("job-1", 0, ["x"])])
    assert [type(e) for e in late] == [ev.MessageIgnored, ev.MessageIgnored]
    assert all("finished" in e.describe() for e in of_type(late, ev.MessageIgnored))


def test_terminal_without_run_log_url_finishes_at_once() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            status("job-1", "QUEUED", run_log_url=None),
            status("job-1", "CANCELLED", None, run_log_url=None),
        ],
    )
    outcome = of_type(events, ev.JobFinished)[0].outcome
    assert outcome.verdict() is Verdict.CANCELLED
    assert of_type(events, ev.RunLogFetchDue) == []


# ----------------------------------------------------------------------------- bad and odd input


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '{"messagePayload": {}}',
        '{"messageType": "RUNLOG_UPDATED", "computeJobId": "job-1"}',
        '{"messageType": "JOB_STATUS_UPDATED", "computeJobId": "job-1", "messagePayload": 3}',
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe",
    ],
)
def test_unusable_text_is_rejected_without_raising(text: str | bytes) -> None:
    follower = opened("job-1")
    (event,) = follower.receive_text(text, 1.0)
    assert isinstance(event, ev.MessageRejected)
    assert event.reason
    assert follower.active and follower.data_to_send() == []


def test_unknown_type_and_unknown_job_are_ignored() -> None:
    follower = opened("job-1")
    unknown = wire("NEW_THING", {"x": 1}, "job-1")
    events = feed(follower, [unknown, status("other", "EXECUTING"), run_log("other", 0, ["x"])])
    assert [type(e) for e in events] == [ev.MessageIgnored] * 3
    assert "NEW_THING" in events[0].describe()
    assert all(e.log_level == 10 for e in events)  # debug
    assert follower.following == ("job-1",)


def test_json_ping_is_answered_with_the_same_payload() -> None:
    follower = opened()
    payload = {"n": 7, "text": "héllo"}
    events = follower.receive_text(wire("PING", payload), 1.0)
    assert events == [ev.PingAnswered()]
    assert sent(follower) == [m.Pong(payload)]


def test_app_message_is_answered_without_interrupting() -> None:
    follower = opened("job-1")
    text = wire(
        "APP_MESSAGE",
        {
            "appMessageId": "app-9",
            "appMessageType": "BARLOG",
            "appMessageFile": None,
            "appMessage": {"a": 1},
        },
        "job-1",
    )
    events = follower.receive_text(text, 1.0)
    assert events == [ev.AppMessageAnswered("job-1", "app-9", "BARLOG")]
    (frame,) = follower.data_to_send()
    assert m.decode_client_message(frame) == m.AppMessageResponse(
        "job-1", "app-9", interrupt_solve=False
    )
    raw = json.loads(frame)
    assert raw["messagePayload"]["appMessage"] == {"interruptSolve": False}


def test_errors_from_the_server() -> None:
    follower = opened("job-1", "job-2")
    not_found = {"errorType": "COMPUTE_JOB_NOT_FOUND", "errorMessage": "no such job"}
    events = feed(follower, [wire("ERROR", not_found, "job-1")])
    assert events == [ev.ReconcileDue("job-1")]
    anonymous = {"errorType": "COMPUTE_JOB_NOT_FOUND", "errorMessage": None}
    # job-1's check is still outstanding: it is not asked for twice.
    assert feed(follower, [wire("ERROR", anonymous)]) == [
        ev.ReconcileDue("job-2"),
    ]
    stranger = wire("ERROR", anonymous, "zzz")
    assert of_type(feed(follower, [stranger]), ev.MessageIgnored)
    other = {"errorType": "INVALID_TOKEN", "errorMessage": "expired"}
    events = feed(follower, [wire("ERROR", other)])
    assert events == [ev.ErrorReceived(None, m.INVALID_TOKEN, "expired")]
    assert "INVALID_TOKEN" in events[0].describe()


# ----------------------------------------------------------------------------- tokens


def test_token_refresh_due_at_two_thirds_of_a_default_lifetime() -> None:
    config = FollowerConfig(silence_limit_seconds=10_000.0, unreachable_limit_seconds=None)
    follower = opened("job-1", config=config, token=Token("tok-1", 900.0, 900.0))
    assert follower.next_deadline() == pytest.approx(600.0)
    assert follower.tick(599.0) == []
    (mint,) = follower.tick(600.0)
    assert mint == ev.TokenRefreshDue()
    # A failed mint is survived and asked again a little later, not on every tick.
    failed = follower.call_failed(mint.call_id, ServerError("HTTP 503", status_code=503), 600.2)
    assert [type(event) for event in failed] == [ev.CallFailed]
    assert follower.tick(600.5) == []
    (again,) = follower.tick(675.0)
    assert again == ev.TokenRefreshDue()
    follower.call_succeeded(again.call_id, Token("tok-2", 1575.0, 900.0), 675.0)
    assert sent(follower) == [m.UpdateToken("tok-2")]
    assert follower.next_deadline() == pytest.approx(1275.0)


def test_token_refresh_scales_to_three_second_tokens_and_cached_tokens() -> None:
    follower = TwoChannels(CONFIG)
    follower.start(101.0)
    follower.answer(ev.TokenRefreshDue, Token("tok-1", 103.0, 3.0), 101.0)
    assert sent(follower) == []  # no socket yet: the handshake carries the token
    assert follower.next_deadline() == pytest.approx(102.0)
    assert follower.tick(101.9) == []
    assert follower.tick(102.0) == [ev.TokenRefreshDue()]


def test_tokens_never_show_in_events_or_reprs() -> None:
    follower = opened("job-1", token=Token("tok-1", 3.0, 3.0))
    events = follower.tick(2.0)
    assert events == [ev.TokenRefreshDue()]
    events += follower.answer(ev.TokenRefreshDue, Token("s3cr3t-token", 5.0, 3.0), 2.1)
    assert all("s3cr3t" not in repr(e) + e.describe() for e in events)
    assert "s3cr3t" not in repr(follower)
    assert "s3cr3t-token" in follower.data_to_send()[0]  # only on the wire


# ----------------------------------------------------------------------------- connection


def test_reconnect_backoff_sequence_then_resubscribe() -> None:
    follower = opened("job-1", "job-2")
    feed(
        follower,
        [
            status("job-1", "EXECUTING", attempts=2),
            run_log("job-1", 0, numbered(70)),
            status("job-2", "QUEUED", run_log_url=None),
        ],
    )
    follower.connection_lost(5.0)
    assert not follower.is_open and follower.connection_id is None
    follower.connection_lost(5.0)  # a second report of the same loss changes nothing
    due_times: list[float] = []
    now = 5.0
    while len(due_times) < 5:
        deadline = follower.next_deadline()
        assert deadline is not None
        reconnect = [e for e in follower.tick(deadline) if isinstance(e, ev.ReconnectDue)]
        if not reconnect:  # a REST check came first
            continue
        assert reconnect == [ev.ReconnectDue(len(due_times) + 1)]
        due_times.append(deadline - now)
        now = deadline
        follower.refuse(ev.ReconnectDue, ServerError("connection refused", status_code=503), now)
    assert due_times == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0])
    now = reconnect_due(follower)
    follower.answer(ev.ReconnectDue, "conn-2", now)
    assert follower.is_open and follower.connection_id == "conn-2"
    assert sent(follower) == [
        m.Subscribe((m.Subscription("job-1", 2, 69), m.Subscription("job-2", 1, -1)))
    ]
    # Backoff starts over once the new socket has proven itself by delivering a message.
    follower.receive_text(status("job-2", "QUEUED", run_log_url=None), now)
    follower.connection_lost(now)
    assert ev.ReconnectDue(1) in follower.tick(now + 0.5)


def test_socket_closed_right_after_the_handshake_keeps_backing_off() -> None:
    # A server that accepts the handshake and closes at once must not get a reconnect every
    # 0.5 s forever: a socket lost before proving itself counts as a failure.
    follower = opened()  # no job, so no REST check deadline comes before the reconnect
    delays: list[float] = []
    now = 0.0
    for _ in range(5):
        follower.connection_lost(now)
        deadline = follower.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
        assert any(isinstance(e, ev.ReconnectDue) for e in follower.tick(now))
        follower.answer(ev.ReconnectDue, "conn", now)
    assert delays == pytest.approx([1.0, 2.0, 4.0, 4.0, 4.0])
    # An ERROR before the close proves nothing (a server refusing us sends one, then closes).
    follower.receive_text(wire("ERROR", {"errorType": "X", "errorMessage": "no"}), now)
    follower.connection_lost(now)
    assert follower.next_deadline() == pytest.approx(now + 4.0)


def test_socket_open_long_enough_starts_the_backoff_over() -> None:
    follower = opened("job-1", config=dataclasses.replace(CONFIG, stable_connection_seconds=3.0))
    follower.connection_lost(0.0)
    assert follower.next_deadline() == pytest.approx(0.5)  # job check at 0.5 comes first
    assert ev.ReconnectDue(2) in follower.tick(1.0)
    follower.answer(ev.ReconnectDue, "conn-2", 1.0)
    follower.connection_lost(4.0)  # open for 3 s without a message: proven all the same
    assert ev.ReconnectDue(1) in follower.tick(4.5)


def test_connection_lost_during_a_connect_attempt_schedules_a_reconnect() -> None:
    follower = tokened(CONFIG)  # the first socket call is out
    follower.follow("job-1", now=0.0)
    assert follower.outstanding(ev.ReconnectDue) == ev.ReconnectDue(1)
    # The driver reports a loss while the connect is still under way (e.g. a stale socket).
    follower.connection_lost(0.1)
    assert not follower.is_open
    deadline = follower.next_deadline()
    assert deadline is not None and deadline <= 0.1 + 1.0
    reconnects = [e for e in follower.tick(0.1 + 1.0) if isinstance(e, ev.ReconnectDue)]
    assert reconnects == [ev.ReconnectDue(2)]
    follower.answer(ev.ReconnectDue, "conn-1", 1.2)
    assert follower.is_open


def test_jitter_comes_from_the_injected_source_within_bounds() -> None:
    delays = []
    for seed in range(20):
        follower = tokened(CONFIG, jitter_source=random.Random(seed).random)
        follower.answer(ev.ReconnectDue, "c", 0.0)
        follower.receive_text(wire("PING", 1), 0.0)
        follower.connection_lost(0.0)
        deadline = follower.next_deadline()
        assert deadline is not None
        delays.append(deadline)
    assert all(0.4 <= d <= 0.6 for d in delays)
    assert len(set(delays)) > 1
    high = tokened(CONFIG, jitter_source=lambda: 1.0)
    high.follow("job-1", now=0.0)
    assert high.tick(0.0) == []  # the first socket call is out already
    high.refuse(ev.ReconnectDue, ServerError("refused", status_code=503), 0.0)
    assert high.next_deadline() == pytest.approx(1.2)


def test_following_while_the_first_socket_opens_asks_for_no_other() -> None:
    follower = tokened(CONFIG)  # the first token asked for the socket at once
    assert follower.outstanding(ev.ReconnectDue).reconnect is False
    assert follower.next_deadline() == TOKEN_DUE
    follower.follow("job-1", now=3.0)
    assert follower.tick(3.0) == []
    # While that connect is under way, another job does not ask for a second one.
    follower.follow("job-2", now=3.05)
    assert follower.tick(3.05) == []
    follower.unfollow("job-2")
    follower.answer(ev.ReconnectDue, None, 3.1)
    assert sent(follower) == [m.Subscribe((m.Subscription("job-1", 0, -1),))]
    # Resuming a job another process was following: SUBSCRIBE carries what was forwarded.
    follower.follow("job-0", execution_attempts=2, last_run_log_line=41, now=3.2)
    assert sent(follower) == [m.Subscribe((m.Subscription("job-0", 2, 41),))]
    follower.follow("job-0", now=3.3)  # already followed: nothing new
    assert sent(follower) == []


def test_a_job_followed_before_the_first_token_gets_the_socket_once_it_came() -> None:
    follower = TwoChannels(CONFIG)
    follower.follow("job-1", now=0.0)  # a hub may follow before its driver's open() ran
    (mint,) = follower.start(0.0)
    assert follower.call_succeeded(mint.call_id, LASTING_TOKEN, 0.1) == []
    (connect,) = follower.tick(0.1)  # the socket asked for by the follow is due
    assert connect == ev.ReconnectDue(1) and connect.reconnect is False
    follower.call_succeeded(connect.call_id, "conn-1", 0.2)
    assert sent(follower) == [m.Subscribe((m.Subscription("job-1", 0, -1),))]


def test_frames_come_back_with_the_input_that_made_them_first() -> None:
    """One channel: a frame is an output of the input that made it, ahead of its events, and
    nothing waits in the core for a later socket."""
    follower = Follower(CONFIG)
    (mint,) = follower.start(0.0)
    token = Token("tok", expires_at=1000.0, lifetime_seconds=1000.0)
    (connect,) = follower.call_succeeded(mint.call_id, token, 0.0)
    assert isinstance(connect, ev.ReconnectDue)
    assert follower.call_succeeded(connect.call_id, "conn-1", 0.0) == []  # no SUBSCRIBE
    outputs = follower.receive_text('{"messageType":"PING","messagePayload":1}', 1.0)
    assert outputs == [ev.SendText('{"messageType":"PONG","messagePayload":1}'), ev.PingAnswered()]
    assert "PONG" not in repr(outputs[0])  # a frame may carry the token: never in a repr
    assert follower.connection_lost(2.0) == []
    (reconnect,) = follower.tick(2.5)  # proven by the PING: the first backoff delay
    assert isinstance(reconnect, ev.ReconnectDue)
    [subscribe] = follower.call_succeeded(reconnect.call_id, "conn-2", 3.0) or [None]
    assert subscribe is None  # still nothing followed
    [frame] = follower.follow("job-1", now=3.5)
    assert isinstance(frame, ev.SendText) and '"SUBSCRIBE"' in frame.text


# ----------------------------------------------------------------------------- liveness and REST


def test_silent_job_is_checked_over_rest() -> None:
    follower = opened("job-1")
    feed(follower, [status("job-1", "EXECUTING")], now=4.0)
    assert follower.next_deadline() == pytest.approx(14.0)
    assert follower.tick(13.9) == []
    (check,) = follower.tick(14.0)
    assert check == ev.ReconcileDue("job-1")
    # Outstanding: never asked twice (the driver answers each call exactly once).
    assert follower.tick(24.0) == []
    follower.call_failed(check.call_id, ServerError("HTTP 503", status_code=503), 24.5)
    assert follower.next_deadline() == pytest.approx(34.5)
    assert follower.tick(34.5) == [ev.ReconcileDue("job-1")]
    events = follower.answer(ev.ReconcileDue, {"status": "EXECUTING"}, 35.0, "job-1")
    assert events == []  # nothing new
    assert follower.next_deadline() == pytest.approx(45.0)


def test_rest_document_reconciles_to_finished() -> None:
    follower = opened("job-1")
    feed(follower, [status("job-1", "EXECUTING"), run_log("job-1", 0, numbered(2))])
    document = {
        "id": "job-1",
        "objectType": "COMPUTE_JOB",
        "status": "COMPLETED",
        "modelStatus": "OK",
        "executionAttempts": 1,
        "resultsUrl": RESULT_URL,  # legacy spelling is accepted here too
        "runLogUrl": RUN_LOG_URL,
        "prettyStatus": "Completed",
    }
    assert follower.tick(20.0) == [ev.ReconcileDue("job-1")]  # silent since 1.0
    events = follower.answer(ev.ReconcileDue, document, 20.0, "job-1")
    assert events == [
        ev.StatusChanged("job-1", "COMPLETED", "OK", 1),
        ev.RunLogFetchDue("job-1", RUN_LOG_URL),
    ]
    # The fetch is outstanding: not asked for again; then it is answered.
    assert follower.tick(30.0) == []
    final = follower.answer(ev.RunLogFetchDue, "line 0\nline 1\nline 2\n", 31.0, "job-1")
    assert forwarded(final) == ["line 2"]
    outcome = of_type(final, ev.JobFinished)[0].outcome
    assert (outcome.status, outcome.result_url) == ("COMPLETED", RESULT_URL)


def test_bad_rest_document_is_reported() -> None:
    follower = opened("job-1")
    assert follower.tick(10.0) == [ev.ReconcileDue("job-1")]
    (event,) = follower.answer(ev.ReconcileDue, {"status": None}, 10.0, "job-1")
    assert isinstance(event, ev.MessageRejected)
    assert follower.following == ("job-1",)


def test_job_gone_finishes_as_deleted() -> None:
    follower = opened("job-1")
    feed(follower, [status("job-1", "EXECUTING"), run_log("job-1", 0, ["last words"])])
    assert follower.tick(12.0) == [ev.ReconcileDue("job-1")]
    gone = JobNotFound("404", compute_job_id="job-1")
    events = follower.refuse(ev.ReconcileDue, gone, 12.0, "job-1")
    assert events[0] == ev.StatusChanged("job-1", "DELETED", None, 1)
    outcome = of_type(events, ev.JobFinished)[0].outcome
    assert outcome.status == "DELETED" and outcome.verdict() is Verdict.CANCELLED
    assert outcome.detail and "404" in outcome.detail
    assert "last words" in str(outcome.error())
    assert not follower.active and follower.tick(13.0) == []


def test_rest_checks_back_off_while_the_socket_is_down() -> None:
    follower = opened("job-1")
    follower.connection_lost(0.0)
    checks: list[float] = []
    now = 0.0
    while len(checks) < 6:
        deadline = follower.next_deadline()
        assert deadline is not None
        now = deadline
        for event in follower.tick(now):
            if isinstance(event, ev.ReconcileDue):
                checks.append(now)
                follower.answer(ev.ReconcileDue, {"status": "EXECUTING"}, now, "job-1")
            elif isinstance(event, ev.ReconnectDue):
                follower.refuse(ev.ReconnectDue, ServerError("refused", status_code=503), now)
    gaps = [b - a for a, b in itertools.pairwise(checks)]
    assert checks[0] == pytest.approx(0.5)
    assert gaps == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0])


# ----------------------------------------------------------------------------- multiplexing


def test_many_jobs_share_one_session() -> None:
    follower = tokened()
    follower.answer(ev.ReconnectDue, "conn-1", 0.0)
    for job_id in ("a", "b", "c"):
        follower.follow(job_id, now=0.0)
    assert len(sent(follower)) == 3
    events = feed(
        follower,
        [
            run_log("a", 0, ["a0"]),
            run_log("b", 0, ["b0", "b1"]),
            status("c", "FAILED", "ERROR", run_log_url=None),
            run_log("a", 1, ["a1"]),
            status("b", "COMPLETED", "OK"),
        ],
    )
    by_job: dict[str, list[str]] = {}
    for batch in of_type(events, ev.RunLogLines):
        by_job.setdefault(batch.job_id, []).extend(batch.lines)
    assert by_job == {"a": ["a0", "a1"], "b": ["b0", "b1"]}
    assert [f.job_id for f in of_type(events, ev.JobFinished)] == ["c"]
    assert follower.following == ("a", "b")
    assert follower.subscriptions() == (m.Subscription("a", 0, 1),)
    follower.unfollow("b")
    follower.unfollow("never-followed")
    assert list(follower.following) == ["a"]
    assert of_type(feed(follower, [run_log("b", 2, ["b2"])]), ev.MessageIgnored)


# ----------------------------------------------------------------------------- events and config


def test_every_event_describes_itself() -> None:
    outcome = JobOutcome("j", "COMPLETED", "OK")
    samples: list[ev.Event] = [
        ev.StatusChanged("j", "EXECUTING", None, 1),
        ev.StatusChanged("j", "COMPLETED", "OK", 1),
        ev.JobRequeued("j", 2),
        ev.RunLogLines("j", 1, 3, ("a", "b")),
        ev.RunLogGap("j", 1, 2),
        ev.RunLogFetchDue("j", RUN_LOG_URL),
        ev.JobFinished(outcome),
        ev.TokenRefreshDue(),
        ev.ReconnectDue(3),
        ev.ReconcileDue("j"),
        ev.AppMessageAnswered("j", "m", "BARLOG"),
        ev.PingAnswered(),
        ev.ErrorReceived("j", "X", "y"),
        ev.MessageRejected("bad"),
        ev.MessageIgnored("odd"),
    ]
    for event in samples:
        assert event.describe()
        assert event.log_level in (10, 20, 30)
    assert ev.RunLogLines("j", 1, 3, ("a", "b")).last_line == 4
    assert ev.JobFinished(outcome).job_id == "j"
    assert "model status OK" in ev.StatusChanged("j", "COMPLETED", "OK", 1).describe()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"silence_limit_seconds": 0},
        {"reconnect_initial_delay_seconds": -1},
        {"reconnect_max_delay_seconds": float("nan")},
        {"reconnect_multiplier": 0.5},
        {"jitter_fraction": 1.0},
    ],
)
def test_config_rejects_unusable_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        FollowerConfig(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- RUNLOG_COMPLETED


def completed(job_id: str, total_lines: int | None) -> str:
    return wire("RUNLOG_COMPLETED", {"totalLines": total_lines}, job_id)


def test_runlog_completed_covering_every_line_finishes_without_the_rest_fetch() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            status("job-1", "EXECUTING"),
            run_log("job-1", 0, numbered(3)),
            run_log("job-1", 3, numbered(2, 3)),
            completed("job-1", 5),
            status("job-1", "COMPLETED", "OK", result_url=RESULT_URL),
        ],
    )
    assert of_type(events, ev.RunLogFetchDue) == []
    assert forwarded(events) == numbered(5)
    (finished,) = of_type(events, ev.JobFinished)
    assert events[-1] == finished
    assert finished.outcome == JobOutcome(
        "job-1",
        "COMPLETED",
        "OK",
        execution_attempts=1,
        result_url=RESULT_URL,
        run_log_url=RUN_LOG_URL,
        last_run_log_line=4,
        run_log_tail=tuple(numbered(5)),
        run_log_complete=True,
    )
    assert not follower.active and follower.next_deadline() == TOKEN_DUE
    # Nothing asks for the run log later either.
    assert follower.tick(1_000.0) == []
    assert follower.asked == {}


def test_an_empty_log_counted_by_runlog_completed_needs_no_fetch() -> None:
    follower = opened("job-1")
    events = feed(follower, [completed("job-1", 0), status("job-1", "FAILED", None)])
    assert of_type(events, ev.RunLogFetchDue) == []
    outcome = of_type(events, ev.JobFinished)[0].outcome
    assert (outcome.last_run_log_line, outcome.run_log_complete) == (-1, True)


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ([run_log("job-1", 0, numbered(3)), run_log("job-1", 5, numbered(2, 5))], "gap"),
        ([run_log("job-1", 0, numbered(5))], "no RUNLOG_COMPLETED"),
        ([run_log("job-1", 0, numbered(5)), completed("job-1", 7)], "total larger"),
        ([run_log("job-1", 0, numbered(5)), completed("job-1", 4)], "total smaller"),
        ([run_log("job-1", 0, numbered(5)), completed("job-1", None)], "no totalLines"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_the_rest_run_log_is_still_fetched(script: list[str], why: str) -> None:
    follower = opened("job-1")
    events = feed(follower, [*script, status("job-1", "COMPLETED", "OK")])
    assert of_type(events, ev.RunLogFetchDue) == [ev.RunLogFetchDue("job-1", RUN_LOG_URL)], why
    assert of_type(events, ev.JobFinished) == []
    final = follower.answer(ev.RunLogFetchDue, "\n".join(numbered(7)), 2.0, "job-1")
    outcome = of_type(final, ev.JobFinished)[0].outcome
    # The REST log read in full makes the log complete, whatever RUNLOG_COMPLETED said.
    assert (outcome.last_run_log_line, outcome.run_log_complete) == (6, True)


def test_terminal_status_before_runlog_completed_fetches_at_once_then_ends_early() -> None:
    """§A6: never wait for RUNLOG_COMPLETED. The fetch starts at the terminal status; if
    RUNLOG_COMPLETED then shows the socket brought every line, the job ends right away and the
    fetch's answer is ignored."""
    follower = opened("job-1")
    events = feed(follower, [run_log("job-1", 0, numbered(4)), status("job-1", "COMPLETED", "OK")])
    assert events[-1] == ev.RunLogFetchDue("job-1", RUN_LOG_URL)
    late = feed(follower, [completed("job-1", 4)], now=1.5)
    (finished,) = late
    assert isinstance(finished, ev.JobFinished)
    assert finished.outcome.run_log_complete and finished.outcome.last_run_log_line == 3
    assert follower.answer(ev.RunLogFetchDue, "\n".join(numbered(4)), 2.0, "job-1") == []
    assert follower.tick(1_000.0) == []


def test_lines_completing_the_log_after_the_terminal_status_end_the_fetch_early() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            run_log("job-1", 0, numbered(3)),
            completed("job-1", 5),
            status("job-1", "COMPLETED", "OK"),
        ],
    )
    assert events[-1] == ev.RunLogFetchDue("job-1", RUN_LOG_URL)
    late = feed(follower, [run_log("job-1", 3, numbered(2, 3))], now=1.5)
    assert forwarded(late) == numbered(2, 3)
    outcome = of_type(late, ev.JobFinished)[0].outcome
    assert outcome.run_log_complete and outcome.last_run_log_line == 4


def test_a_total_from_an_earlier_attempt_is_forgotten_at_a_requeue() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            status("job-1", "EXECUTING", attempts=1),
            run_log("job-1", 0, numbered(5)),
            completed("job-1", 5),
            status("job-1", "EXECUTING", attempts=2),
            status("job-1", "COMPLETED", "OK", attempts=2),
        ],
    )
    assert of_type(events, ev.JobRequeued) == [ev.JobRequeued("job-1", 2)]
    assert of_type(events, ev.RunLogFetchDue) == [ev.RunLogFetchDue("job-1", RUN_LOG_URL)]


def test_a_server_restarting_numbering_never_skips_the_fetch() -> None:
    follower = opened("job-1")
    events = feed(
        follower,
        [
            status("job-1", "EXECUTING", attempts=1),
            run_log("job-1", 0, numbered(3)),
            status("job-1", "EXECUTING", attempts=2),
            run_log("job-1", 0, ["second 0", "second 1"]),
            completed("job-1", 5),  # matches the positions, but not the server's numbering
            status("job-1", "COMPLETED", "OK", attempts=2),
        ],
    )
    assert of_type(events, ev.RunLogFetchDue) == [ev.RunLogFetchDue("job-1", RUN_LOG_URL)]


def test_lines_given_up_earlier_keep_the_log_incomplete() -> None:
    follower = opened("job-1", config=dataclasses.replace(CONFIG, max_buffered_lines=2))
    events = feed(
        follower,
        [
            run_log("job-1", 0, ["a"]),
            # Lines 1-2 never come; 3 buffered lines overflow the buffer: the gap is given up.
            run_log("job-1", 3, ["d", "e", "f"]),
            completed("job-1", 6),
            status("job-1", "COMPLETED", "OK"),
        ],
    )
    assert of_type(events, ev.RunLogGap) == [ev.RunLogGap("job-1", 1, 2)]
    assert of_type(events, ev.RunLogFetchDue) == [ev.RunLogFetchDue("job-1", RUN_LOG_URL)]
    final = follower.answer(ev.RunLogFetchDue, "a\nb\nc\nd\ne\nf\n", 2.0, "job-1")
    outcome = of_type(final, ev.JobFinished)[0].outcome
    assert outcome.last_run_log_line == 5
    assert not outcome.run_log_complete


def test_a_failed_fetch_or_a_404_leaves_the_log_not_known_complete() -> None:
    follower = opened("job-1", "job-2")
    feed(follower, [run_log("job-1", 0, numbered(2)), status("job-1", "COMPLETED", "OK")])
    unavailable = of_type(
        follower.refuse(ev.RunLogFetchDue, ServerError("HTTP 503", status_code=503), 12.0, "job-1"),
        ev.JobFinished,
    )
    assert not unavailable[0].outcome.run_log_complete
    assert follower.tick(12.0) == [ev.ReconcileDue("job-2")]
    gone = of_type(
        follower.refuse(ev.ReconcileDue, JobNotFound("404", compute_job_id="job-2"), 12.0, "job-2"),
        ev.JobFinished,
    )
    assert not gone[0].outcome.run_log_complete


# ----------------------------------------------------------------------------- raw frames


def test_text_frames_as_bytes_are_decoded_strictly_as_utf8() -> None:
    follower = opened("job-1")
    good = run_log("job-1", 0, ["café ✓"]).encode("utf-8")
    assert forwarded(follower.receive_text(good, 1.0)) == ["café ✓"]
    bad = run_log("job-1", 1, ["caf\udcff"], end=1).encode("utf-8", "surrogateescape")
    (rejected,) = follower.receive_text(bad, 1.0)
    assert isinstance(rejected, ev.MessageRejected)
    assert "UTF-8" in rejected.reason
    # The bad frame changed nothing: the next good line is line 1.
    assert forwarded(follower.receive_text(run_log("job-1", 1, ["x"]).encode(), 1.0)) == ["x"]


# ----------------------------------------------------------------------------- many jobs


def test_checks_stay_right_with_many_jobs_heard_at_different_times() -> None:
    """The check schedule (a heap corrected lazily) against a plain model: every job not heard
    of for the silence limit gets exactly one ReconcileDue, and next_deadline is the earliest
    check of a job still running."""
    limit = 2.0
    config = dataclasses.replace(CONFIG, silence_limit_seconds=limit)
    follower = opened(config=config)
    rng = random.Random(7)
    heard: dict[str, float] = {}
    now = 0.0
    checked = 0
    for step in range(400):
        now += rng.uniform(0.0, 0.5)
        action = rng.random()
        if action < 0.15 or not heard:
            job_id = f"job-{step}"
            follower.follow(job_id, now=now)
            heard[job_id] = now
        elif action < 0.2:
            job_id = rng.choice(sorted(heard))
            follower.unfollow(job_id)
            del heard[job_id]
        elif action < 0.25:
            job_id = rng.choice(sorted(heard))
            feed(follower, [status(job_id, "CANCELLED", None, run_log_url=None)], now=now)
            del heard[job_id]
        else:
            job_id = rng.choice(sorted(heard))
            # No runLogUrl: the job's end then finishes it at once (no run log to fetch).
            feed(follower, [status(job_id, "EXECUTING", run_log_url=None)], now=now)
            heard[job_id] = now
        follower.data_to_send()
        expected_deadline = min((at + limit for at in heard.values()), default=TOKEN_DUE)
        assert follower.next_deadline() == expected_deadline
        due = sorted(job for job, at in heard.items() if at + limit <= now)
        asked = of_type(follower.tick(now), ev.ReconcileDue)
        assert sorted(e.job_id for e in asked) == due
        checked += len(due)
        for call in asked:
            # Answered as a 5xx would be: the next check is a silence limit away (socket open).
            follower.call_failed(call.call_id, ServerError("HTTP 503", status_code=503), now)
            heard[call.job_id] = now
    assert checked > 20, "too few checks came due: the test would prove little"
    assert sorted(follower.following) == sorted(heard)
    assert follower.active is bool(heard)


# ----------------------------------------------------------------------------- app messages

APP_MESSAGE_FRAME = (
    '{"computeJobId":"job-1","messageType":"APP_MESSAGE","messagePayload":'
    '{"appMessageId":"app-3","appMessageType":"GAPNOTIFY","appMessage":{"MIPRELGAP":0.004}}}'
)


class _StopAtGap:
    """A handler that interrupts below a gap and reports one event per message."""

    def __init__(self) -> None:
        self.seen: list[tuple[m.AppMessage, float]] = []

    def answer(
        self, message: m.AppMessage, now: float
    ) -> tuple[m.AppMessageResponse, Sequence[ev.Event]]:
        self.seen.append((message, now))
        gap = (message.app_message or {}).get("MIPRELGAP", 1.0)
        # Wrong ids on purpose: the core must answer the message it got.
        response = m.AppMessageResponse("other", "x", interrupt_solve=gap < 0.01)
        return response, [ev.MessageIgnored(f"gap {gap}", message.compute_job_id)]


def test_app_message_handler_answers_at_once_with_its_events() -> None:
    follower = opened()
    handler = _StopAtGap()
    follower.follow("job-1", now=0.0, app_messages=handler)
    follower.data_to_send()
    events = follower.receive_text(APP_MESSAGE_FRAME, 2.5)
    assert events == [
        ev.AppMessageAnswered("job-1", "app-3", "GAPNOTIFY", handled=True, interrupt_solve=True),
        ev.MessageIgnored("gap 0.004", "job-1"),
    ]
    # Asked for, so not a warning, also when it stops the solve.
    assert events[0].log_level == logging.DEBUG
    assert "unexpected" not in events[0].describe()
    assert events[0].describe().endswith("interrupting the solve")
    assert handler.seen[0][1] == 2.5
    assert follower.data_to_send() == [
        '{"computeJobId":"job-1","messageType":"APP_MESSAGE_RESPONSE","messagePayload":'
        '{"appMessageId":"app-3","appMessage":{"interruptSolve":true}}}'
    ]


def test_a_failing_handler_still_lets_the_solve_go_on() -> None:
    class Broken:
        def answer(
            self, message: m.AppMessage, now: float
        ) -> tuple[m.AppMessageResponse, Sequence[ev.Event]]:
            raise ValueError("bug")

    follower = opened()
    follower.follow("job-1", now=0.0, app_messages=Broken())
    follower.data_to_send()
    events = follower.receive_text(APP_MESSAGE_FRAME, 1.0)
    assert [type(event) for event in events] == [ev.AppMessageAnswered, ev.MessageRejected]
    assert follower.data_to_send() == [
        '{"computeJobId":"job-1","messageType":"APP_MESSAGE_RESPONSE","messagePayload":'
        '{"appMessageId":"app-3","appMessage":{"interruptSolve":false}}}'
    ]


def test_a_second_follow_of_a_job_keeps_the_first_handler_answering() -> None:
    """Two watchers of one job (a shared socket): one answer per callback, the first handler's."""
    follower = opened()
    first, second = _StopAtGap(), _StopAtGap()
    follower.follow("job-1", now=0.0, app_messages=first)
    follower.data_to_send()
    assert follower.follow("job-1", now=0.5, app_messages=second) == []
    assert follower.data_to_send() == []  # no second SUBSCRIBE
    follower.receive_text(APP_MESSAGE_FRAME, 1.0)
    assert len(first.seen) == 1 and second.seen == []
    (answer,) = follower.data_to_send()
    assert '"appMessageId":"app-3"' in answer and '"interruptSolve":true' in answer


def test_a_later_follow_brings_the_handler_when_the_first_had_none() -> None:
    """A sensor's watch (no handler) first, then an operator's with solver progress."""
    follower = opened("job-1")
    handler = _StopAtGap()
    follower.follow("job-1", now=0.5, app_messages=handler)
    follower.data_to_send()
    follower.receive_text(APP_MESSAGE_FRAME, 1.0)
    assert len(handler.seen) == 1
    assert '"interruptSolve":true' in follower.data_to_send()[0]


def test_an_app_message_for_a_job_not_followed_gets_the_default_answer() -> None:
    follower = opened("job-2")
    handler = _StopAtGap()
    follower.follow("job-9", now=0.0, app_messages=handler)
    follower.data_to_send()
    follower.receive_text(APP_MESSAGE_FRAME, 1.0)
    assert handler.seen == []
    assert '"interruptSolve":false' in follower.data_to_send()[0]


def test_unreachable_limit_defaults_to_ten_minutes_and_must_be_positive() -> None:
    assert FollowerConfig().unreachable_limit_seconds == 600.0
    assert FollowerConfig(unreachable_limit_seconds=None).unreachable_limit_seconds is None
    with pytest.raises(ConfigurationError, match="unreachable_limit_seconds"):
        FollowerConfig(unreachable_limit_seconds=0)
    from airflow_insight.exceptions import ServerUnreachable, TransportError

    assert issubclass(ServerUnreachable, TransportError) and not ServerUnreachable.permanent


def test_a_handler_answers_until_the_job_finishes() -> None:
    """After the terminal status, while the run log is fetched, callbacks are still expected."""
    follower = opened()
    handler = _StopAtGap()
    follower.follow("job-1", now=0.0, app_messages=handler)
    feed(follower, [status("job-1", "COMPLETED", "OK")])
    assert follower.following == ("job-1",) and follower.subscriptions() == ()
    follower.data_to_send()
    events = follower.receive_text(APP_MESSAGE_FRAME, 1.5)
    assert events[0] == ev.AppMessageAnswered(
        "job-1", "app-3", "GAPNOTIFY", handled=True, interrupt_solve=True
    )
    assert events[0].log_level == logging.DEBUG
    assert len(handler.seen) == 1


# ----------------------------------------------------------------------------- outages


def _drive_outage(follower: TwoChannels, start: float, end: float) -> list[ev.Event]:
    """Every due call fails without an answer (a dead server) from ``start`` to ``end``."""
    from airflow_insight.exceptions import TransportError

    events: list[ev.Event] = []
    now = start
    while now < end:
        for event in follower.tick(now):
            events.append(event)
            if isinstance(event, ev.TokenRefreshDue | ev.ReconnectDue | ev.ReconcileDue):
                refused = TransportError("connection refused")
                events.extend(follower.call_failed(event.call_id, refused, now))
        now += 0.25
    return events


def test_an_outage_is_said_once_with_its_deadline_then_each_minute_then_its_end() -> None:
    config = dataclasses.replace(CONFIG, unreachable_limit_seconds=600.0)
    follower = opened("job-1", config=config)
    follower.server = "http://insight:8765 (Airflow connection 'insight_default')"
    assert follower.connection_lost(10.0) == []
    events = _drive_outage(follower, 10.0, 200.0)
    loud = [event for event in events if event.log_level >= logging.INFO]
    # One warning at the first failed attempt, then about one a minute: nothing per retry.
    assert [type(event) for event in loud] == [ev.ServerUnanswered] * 4, loud
    first, *later = loud
    assert isinstance(first, ev.ServerUnanswered) and first.first
    assert first.error == "connection refused"
    # Silent since the socket opened at 0 (the last answer); the limit counts from there.
    assert first.gives_up_in_seconds == pytest.approx(600.0 - first.silent_seconds)
    text = first.describe_at(1_800_000_000.0)
    assert "http://insight:8765 (Airflow connection 'insight_default') stopped answering" in text
    assert "(connection refused)" in text
    moment = 1_800_000_000.0 + (first.gives_up_in_seconds or 0.0)
    stamp = datetime.datetime.fromtimestamp(moment, tz=datetime.UTC)
    assert f"gives up at {stamp:%Y-%m-%d %H:%M:%S} UTC, in" in text, text
    assert "unreachable_limit_seconds=600" in text
    silences = [event.silent_seconds for event in loud if isinstance(event, ev.ServerUnanswered)]
    gaps = [later_one - earlier for earlier, later_one in itertools.pairwise(silences)]
    assert all(59.0 <= gap <= 61.0 for gap in gaps), gaps
    assert not any(event.first for event in later if isinstance(event, ev.ServerUnanswered))
    assert "still does not answer (silent for" in later[0].describe()
    # The retries themselves are there, at DEBUG.
    quiet = [e for e in events if isinstance(e, ev.CallFailed | ev.ReconnectDue)]
    assert len(quiet) > 10 and all(e.log_level == logging.DEBUG for e in quiet)
    # The next answer ends it, said once.
    reconnect = next(
        event
        for now in range(200, 260)
        for event in follower.tick(float(now))
        if isinstance(event, ev.ReconnectDue)
    )
    back = follower.call_succeeded(reconnect.call_id, "conn-2", 260.0)
    assert [type(event) for event in back] == [ev.ServerAnswersAgain]
    assert back[0].log_level == logging.INFO
    assert "answers again after 260 s without an answer" in back[0].describe()
    assert not [e for e in follower.tick(400.0) if isinstance(e, ev.ServerUnanswered)]


def test_an_outage_ends_with_the_unreachable_limit_and_nothing_after() -> None:
    config = dataclasses.replace(CONFIG, unreachable_limit_seconds=90.0)
    follower = opened("job-1", config=config)
    follower.connection_lost(0.0)
    events = _drive_outage(follower, 0.0, 120.0)
    assert not follower.active
    # Up to the job's failure (a driver stops there: nothing is followed any more).
    end = next(n for n, e in enumerate(events) if isinstance(e, ev.FollowFailed))
    loud = [type(e) for e in events[: end + 1] if e.log_level >= logging.INFO]
    assert loud == [ev.ServerUnanswered, ev.ServerUnanswered, ev.FollowFailed], loud
    assert "no answer from" in events[end].describe()


def test_first_connection_says_connecting_and_later_ones_reconnecting() -> None:
    follower = TwoChannels(CONFIG)
    (token_call,) = follower.start(0.0)
    (first,) = follower.call_succeeded(token_call.call_id, LASTING_TOKEN, 0.0)
    assert isinstance(first, ev.ReconnectDue) and not first.reconnect
    assert first.describe() == "Connecting to the Insight progress WebSocket"
    assert first.log_level == logging.INFO
    follower.call_succeeded(first.call_id, "conn-1", 0.1)
    follower.follow("job-1", now=0.1)
    follower.connection_lost(1.0)
    again = [e for e in follower.tick(5.0) if isinstance(e, ev.ReconnectDue)]
    assert len(again) == 1 and again[0].reconnect
    assert again[0].describe().startswith("Reconnecting the Insight progress WebSocket (attempt")


def test_a_failure_of_every_job_names_the_server_not_a_job() -> None:
    from airflow_insight.exceptions import AuthenticationError

    follower = TwoChannels(CONFIG, server="http://insight:8765 (Airflow connection 'x')")
    (token_call,) = follower.start(0.0)
    refused = AuthenticationError("the Insight server refused the credentials (HTTP 401)")
    (failed,) = follower.call_failed(token_call.call_id, refused, 0.0)
    assert isinstance(failed, ev.FollowFailed) and failed.job_id is None
    text = failed.describe()
    assert "(all)" not in text
    assert text.startswith(
        "Following Insight compute jobs on http://insight:8765 (Airflow connection 'x') failed:"
    )
