"""Property tests of the core (hypothesis): whatever the wire does, lines arrive once, in order.

Frames are written here as JSON by hand (``json.dumps`` of the wire shapes in the protocol
reference), never by the codec under test, so a bug shared by our encoder and decoder shows.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

from core_channels import TwoChannels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_insight.exceptions import RemoteProtocolError, ServerError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.tokens import Token

JOB = "job-p"
URL = "/api/scenarios/s1/run-log"
CONFIG = FollowerConfig(
    silence_limit_seconds=5.0,
    reconnect_initial_delay_seconds=0.1,
    reconnect_max_delay_seconds=0.4,
    jitter_fraction=0.0,
    unreachable_limit_seconds=None,
)
LOADED_MACHINE = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def frame(message_type: str, payload: Any, job_id: str | None = JOB) -> str:
    document: dict[str, Any] = {"messageType": message_type, "messagePayload": payload}
    if job_id is not None:
        document["computeJobId"] = job_id
    return json.dumps(document)


def status_frame(status: str, attempts: int) -> str:
    payload = {"status": status, "modelStatus": None, "executionAttempts": attempts}
    payload["runLogUrl"] = URL
    return frame("JOB_STATUS_UPDATED", payload)


def batch_frame(start: int, lines: list[str]) -> str:
    return frame(
        "RUNLOG_UPDATED",
        {"startLine": start, "endLines": start + len(lines) - 1, "lines": lines},
    )


@st.composite
def wire_histories(draw: st.DrawFn) -> dict[str, Any]:
    """A job's log cut into batches, and what the wire does with them."""
    count = draw(st.integers(0, 40))
    lines = [f"line {i} ✓ \\t" for i in range(count)]
    cuts = draw(st.lists(st.integers(1, max(1, count - 1)), max_size=8)) if count > 1 else []
    bounds = sorted({0, count, *cuts})
    batches = [(a, lines[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    step = st.one_of(
        st.tuples(st.just("batch"), st.integers(0, max(0, len(batches) - 1))),
        st.tuples(st.just("drop"), st.just(0)),
        st.tuples(st.just("requeue"), st.just(0)),
        st.tuples(st.just("wait"), st.just(0)),
    )
    steps = draw(st.lists(step, max_size=30)) if batches else []
    return {
        "lines": lines,
        "batches": batches,
        "steps": steps,
        "fetch_ok": draw(st.booleans()),
        "runlog_completed": draw(st.booleans()),
    }


class _Server:
    """Plays the server's side around one follower and records what was forwarded."""

    def __init__(self, history: dict[str, Any]) -> None:
        self.history = history
        self.lines: list[str] = history["lines"]
        self.attempts = 1
        self.written = 0  # how many lines the server has written so far (replays reach this)
        self.now = 0.0
        self.forwarded: list[tuple[int, str]] = []
        self.gaps: list[tuple[int, int]] = []
        self.finished: list[ev.JobFinished] = []
        self.follower = TwoChannels(CONFIG)
        (mint,) = self.follower.start(0.0)
        (connect,) = self.follower.call_succeeded(mint.call_id, Token("t", 1e9, 1e9), 0.0)
        self.follower.call_succeeded(connect.call_id, "c0", 0.0)
        self.follower.follow(JOB, now=0.0)
        self.follower.data_to_send()
        self.feed(status_frame("EXECUTING", 1))

    def feed(self, text: str) -> None:
        self.handle(self.follower.receive_text(text, self.now))
        self.handle(self.follower.tick(self.now))
        self.replay_on_subscribe()

    def handle(self, events: list[ev.Event]) -> None:
        pending = list(events)
        while pending:
            event = pending.pop(0)
            match event:
                case ev.RunLogLines():
                    self.forwarded.extend(
                        (event.first_line + i, line) for i, line in enumerate(event.lines)
                    )
                case ev.RunLogGap():
                    self.gaps.append((event.first_line, event.last_line))
                case ev.JobFinished():
                    self.finished.append(event)
                case ev.ReconnectDue():
                    pending.extend(self.follower.call_succeeded(event.call_id, "c1", self.now))
                case ev.ReconcileDue():
                    document = {"status": "EXECUTING", "executionAttempts": self.attempts}
                    pending.extend(self.follower.call_succeeded(event.call_id, document, self.now))
                case ev.RunLogFetchDue():
                    if self.history["fetch_ok"]:
                        text = "".join(f"{line}\n" for line in self.lines)
                        answer = self.follower.call_succeeded(event.call_id, text, self.now)
                    else:
                        error = ServerError("HTTP 503", status_code=503)
                        answer = self.follower.call_failed(event.call_id, error, self.now)
                    pending.extend(answer)
                case ev.TokenRefreshDue():
                    token = Token("t2", self.now + 1e9, 1e9)
                    pending.extend(self.follower.call_succeeded(event.call_id, token, self.now))

    def replay_on_subscribe(self) -> None:
        for text in self.follower.data_to_send():
            sent = m.decode_client_message(text)
            if isinstance(sent, m.Subscribe):
                for item in sent.subscriptions:
                    start = item.last_run_log_line + 1
                    if start < self.written:
                        self.feed(batch_frame(start, self.lines[start : self.written]))

    def run(self) -> None:
        for kind, index in self.history["steps"]:
            self.now += 0.05
            if kind == "batch":
                start, lines = self.history["batches"][index]
                self.written = max(self.written, start + len(lines))
                self.feed(batch_frame(start, lines))
            elif kind == "drop":
                self.handle(self.follower.connection_lost(self.now))
            elif kind == "requeue":
                self.attempts += 1
                self.feed(status_frame("QUEUED", self.attempts))
                self.feed(status_frame("EXECUTING", self.attempts))
            else:
                self.now += 1.0
                self.handle(self.follower.tick(self.now))
                self.replay_on_subscribe()
        self.written = len(self.lines)
        if self.history["runlog_completed"]:
            self.feed(frame("RUNLOG_COMPLETED", {"totalLines": len(self.lines)}))
        self.feed(status_frame("COMPLETED", self.attempts))
        for _ in range(20):  # the fetch, a reconnect: whatever is still due
            if self.finished:
                break
            self.now += 1.0
            self.handle(self.follower.tick(self.now))
            self.replay_on_subscribe()


@LOADED_MACHINE
@given(wire_histories())
def test_every_line_once_in_order_or_a_reported_gap(history: dict[str, Any]) -> None:
    server = _Server(history)
    server.run()
    lines = history["lines"]
    assert len(server.finished) == 1, "the job must end exactly once"
    positions = [position for position, _ in server.forwarded]
    assert positions == sorted(set(positions)), "a line forwarded twice or out of order"
    assert all(lines[position] == text for position, text in server.forwarded)
    if history["fetch_ok"]:
        # The REST run log fills every gap: the whole log, exactly once.
        assert [text for _, text in server.forwarded] == lines
        assert server.finished[0].outcome.last_run_log_line == len(lines) - 1
        return
    # Without the fetch, every hole before the last forwarded line is reported as a gap.
    in_gaps = {p for first, last in server.gaps for p in range(first, last + 1)}
    assert not in_gaps & set(positions)
    if positions:
        missing = set(range(positions[-1])) - set(positions)
        assert missing <= in_gaps


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KNOWN_TYPES = st.sampled_from([*m.SERVER_MESSAGE_TYPES, *m.CLIENT_MESSAGE_TYPES, "X"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_text_raises_only_remote_protocol_error(text: str | bytes) -> None:
    for decode in (m.decode_server_message, m.decode_client_message):
        with contextlib.suppress(RemoteProtocolError):
            decode(text)


@settings(max_examples=300, deadline=None)
@given(KNOWN_TYPES, st.one_of(st.none(), st.text(max_size=8), st.integers()), JSON_VALUES)
def test_wire_shaped_json_raises_only_remote_protocol_error(
    message_type: str, job_id: object, payload: object
) -> None:
    text = json.dumps(
        {"computeJobId": job_id, "messageType": message_type, "messagePayload": payload}
    )
    for decode in (m.decode_server_message, m.decode_client_message):
        with contextlib.suppress(RemoteProtocolError):
            decode(text)
    # And the core survives it too: a bad frame becomes an event, never an exception.
    follower = TwoChannels(CONFIG)
    follower.follow(JOB, now=0.0)
    follower.receive_text(text, 1.0)
