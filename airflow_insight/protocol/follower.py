"""The core of a progress WebSocket session: follow any number of compute jobs, sans I/O.

One :class:`Follower` per progress WebSocket *session* (it outlives reconnects), following any
number of jobs multiplexed by ``computeJobId``. It never reads a clock, sleeps, or touches a
socket. Its inputs are only what a driver has to tell it:

* :meth:`~Follower.start`, :meth:`~Follower.follow`, :meth:`~Follower.unfollow`;
* :meth:`~Follower.receive_text` (a text frame), :meth:`~Follower.connection_lost`;
* :meth:`~Follower.call_succeeded` / :meth:`~Follower.call_failed` (a call it asked for, by id);
* :meth:`~Follower.tick` (the time; wait until :meth:`~Follower.next_deadline` between ticks).

Every input returns one list of outputs: frames to send now (:class:`~.events.SendText`) first,
then events; the events that are calls (``TokenRefreshDue``, ``ReconnectDue``, ``ReconcileDue``,
``RunLogFetchDue``) are answered exactly once, possibly late. State changes only through the
session table (:mod:`.session`) and the job phase table (:mod:`.jobs`); per-job decisions are in
:mod:`.tracker`, what an error answer means in :mod:`.calls`, automatic replies in
:mod:`.replies`. The driver loop, the answer of each call and the decisions where the protocol
is silent (resubscribing, backoff, the first token, outages): ``docs/design.md#the-follower``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec

from airflow_insight.exceptions import InsightError, RemoteProtocolError
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.auth import after_refusal
from airflow_insight.protocol.calls import ErrorMeaning, OutstandingCalls, Purpose, meaning
from airflow_insight.protocol.config import FollowerConfig
from airflow_insight.protocol.events import (
    CallFailed,
    ErrorReceived,
    FollowFailed,
    MessageIgnored,
    MessageRejected,
    Output,
    PingAnswered,
    ReconcileDue,
    ReconnectDue,
    RunLogFetchDue,
    SendText,
    TokenRefreshDue,
)
from airflow_insight.protocol.replies import answer_app_message
from airflow_insight.protocol.session import Session, SessionState
from airflow_insight.protocol.tokens import Token
from airflow_insight.protocol.tracker import JobTracker
from airflow_insight.protocol.unreachable import UnreachableTimer

__all__ = ["Follower", "FollowerConfig"]

_P = ParamSpec("_P")


def _input(
    method: Callable[Concatenate[Follower, _P], Sequence[Output]],
) -> Callable[Concatenate[Follower, _P], list[Output]]:
    """Mark a core input: what it returns, with the frames it queued first (one channel)."""

    @functools.wraps(method)
    def run(follower: Follower, /, *args: _P.args, **kwargs: _P.kwargs) -> list[Output]:
        outputs = method(follower, *args, **kwargs)
        if follower._outgoing:
            frames = [SendText(text) for text in follower._outgoing]
            follower._outgoing = []
            return [*frames, *outputs]
        return outputs if isinstance(outputs, list) else list(outputs)

    return run


class Follower:
    """Follow compute jobs over one WebSocket session; see the module docstring."""

    def __init__(
        self,
        config: FollowerConfig | None = None,
        *,
        jitter_source: Callable[[], float] | None = None,
        server: str = "the Insight server",
    ) -> None:
        self.config = config or FollowerConfig()
        # The socket is a standing question: silence counts from the last answer.
        self._timer = UnreachableTimer(
            server, self.config.unreachable_limit_seconds, listening=True
        )
        self.session = Session(self.config, jitter_source)
        self._calls = OutstandingCalls()
        self._jobs = JobTracker(self.config, self.session, self._calls)
        self._outgoing: list[str] = []
        # When the outage under way was last said (read only during an outage).
        self._outage_said_at = 0.0
        # Whether a socket was ever open in this session: the next one is a reconnect.
        self._opened_once = False

    def __repr__(self) -> str:
        # Never the token or any secret: the session's repr says only whether it has a token.
        return (
            f"Follower(server={self.server!r}, {self.session!r},"
            f" following={len(self._jobs.running)}, calls={len(self._calls)})"
        )

    # ----------------------------------------------------------------------------- state

    @property
    def server(self) -> str:
        """The server as error messages name it (its base URL; never credentials)."""
        return self._timer.server

    @server.setter
    def server(self, server: str) -> None:
        self._timer.server = server

    @property
    def is_open(self) -> bool:
        """True from a ``ReconnectDue`` answered until the socket is lost."""
        return self.session.is_open

    @property
    def state(self) -> SessionState:
        """The socket's state (see :mod:`.session`)."""
        return self.session.state

    @property
    def connection_id(self) -> str | None:
        """The ``connection-id`` of the open socket, if the driver could read it."""
        return self.session.connection_id

    @property
    def following(self) -> tuple[str, ...]:
        """The ids of followed jobs that have not finished yet."""
        return tuple(self._jobs.running)

    @property
    def active(self) -> bool:
        """True while some followed job has not finished."""
        return bool(self._jobs.running)

    def subscriptions(self) -> tuple[m.Subscription, ...]:
        """What a ``SUBSCRIBE`` would carry now: one entry per job still running (§A5)."""
        return tuple(job.subscription() for job in self._jobs.following_phase())

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do; None when nothing is scheduled."""
        deadlines = self.session.deadlines()
        outage_report = None
        if self._timer.in_outage:
            outage_report = self._outage_said_at + self.config.outage_report_interval_seconds
        for deadline in (self._jobs.earliest_check(), self._unreachable_at(), outage_report):
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines, default=None)

    # ----------------------------------------------------------------------------- jobs

    @_input
    def start(self, now: float) -> Sequence[Output]:
        """Ask for the first token (answer it before following: see the module docstring)."""
        return [self._calls.issue(lambda c: TokenRefreshDue(c, fresh=False), Purpose.FIRST_TOKEN)]

    @_input
    def follow(
        self,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        now: float,
        app_messages: AppMessageHandler | None = None,
    ) -> Sequence[Output]:
        """Start following a submitted job, optionally resuming from what was already forwarded.

        ``app_messages`` answers the job's solver callbacks (see :mod:`.appmessages`).
        Following a job already followed only offers its handler (see
        :meth:`~.tracker.JobTracker.offer_handler`); unfollow it first to start over.
        """
        if job_id in self._jobs.jobs:
            self._jobs.offer_handler(job_id, app_messages)
            return []
        if not self._jobs.running:
            self._timer.listen(now)  # The limit counts from the first followed job.
        job = self._jobs.add(
            job_id,
            execution_attempts=execution_attempts,
            last_run_log_line=last_run_log_line,
            now=now,
            app_messages=app_messages,
        )
        if self.session.is_open:
            if self.config.subscribe_on_follow:
                self._queue(m.Subscribe((job.subscription(),)))
        else:
            # Nothing will open a socket by itself: ask for one now (if not under way).
            self.session.wanted(now)
        return []

    @_input
    def unfollow(self, job_id: str) -> Sequence[Output]:
        """Forget a job; later messages about it are ignored. No message goes to the server."""
        self._jobs.remove(job_id)
        return []

    # ----------------------------------------------------------------------------- connection

    @_input
    def connection_lost(self, now: float) -> Sequence[Output]:
        """The open socket closed or broke: schedule a reconnect and REST checks."""
        if self.session.lost(now):
            # Texts queued for the dead socket mean nothing to the next one (it gets a SUBSCRIBE).
            self._outgoing.clear()
            self._jobs.socket_lost(now)
        return []

    def _opened(self, connection_id: str | None, now: float) -> None:
        """A socket is open: queue ``SUBSCRIBE`` for every job still running (§A5)."""
        self.session.opened(connection_id, now)
        self._opened_once = True
        running = self._jobs.socket_opened(now)
        if running:
            self._queue(m.Subscribe(tuple(job.subscription() for job in running)))

    def _connect_failed(self, now: float) -> None:
        """A connect attempt failed: back off further."""
        self.session.failed(now)
        self._outgoing.clear()

    def _use_token(self, token: Token) -> None:
        """A token is in use: schedule its refresh; queue ``UPDATE_TOKEN`` on an open socket."""
        self.session.token_in_use(token)
        if self.session.is_open:
            self._queue(m.UpdateToken(token.value))

    # ----------------------------------------------------------------------------- call answers

    @_input
    def call_succeeded(self, call_id: int, result: Any, now: float) -> Sequence[Output]:
        """The driver performed call ``call_id``; ``result`` is its answer (see the docstring)."""
        call, purpose, refusals = self._calls.take(call_id)
        back = self._heard(now)
        return [*back, *self._call_answered(call, purpose, refusals, result, now)]

    def _call_answered(
        self, call: Any, purpose: Purpose, refusals: int, result: Any, now: float
    ) -> Sequence[Output]:
        match call:
            case TokenRefreshDue():
                self._use_token(result)
                if purpose is Purpose.FIRST_TOKEN and self.session.state is SessionState.IDLE:
                    # The socket opens before the first submit, so the submit can name it.
                    self.session.wanted(now)
                    self.session.due(now)
                    return [self._open_socket(refusals)]
                if purpose in (Purpose.CONNECT, Purpose.AFTER_REFUSAL):
                    return [self._open_socket(refusals)]
                return []
            case ReconnectDue():
                self._opened(result, now)
                return []
            case ReconcileDue():
                return self._jobs.document_received(call.job_id, result, now)
            case RunLogFetchDue():
                return self._jobs.run_log_fetched(call.job_id, result)
        return []  # pragma: no cover - every call type is handled above

    @_input
    def call_failed(self, call_id: int, error: InsightError, now: float) -> Sequence[Output]:
        """The driver's call ``call_id`` failed with ``error``: decide what it means, once."""
        call, purpose, refusals = self._calls.take(call_id)
        kind = meaning(error)
        if kind is not ErrorMeaning.NO_ANSWER:
            # An HTTP error is an answer from the server.
            back = self._heard(now)
            return [*back, *self._call_refused(call, purpose, refusals, kind, error, now)]
        outage = self._no_answer(now, str(error))
        events = self._call_refused(call, purpose, refusals, kind, error, now)
        # The outage lines report a failure without an answer; each retry is DEBUG.
        return [*outage, *(_quietly(event) for event in events)]

    def _call_refused(
        self,
        call: Any,
        purpose: Purpose,
        refusals: int,
        kind: ErrorMeaning,
        error: InsightError,
        now: float,
    ) -> Sequence[Output]:
        match call:
            case TokenRefreshDue():
                return self._token_failed(purpose, refusals, error, now)
            case ReconnectDue():
                again = after_refusal(refusals) if kind is ErrorMeaning.REFUSED else None
                if again is not None:
                    # The 401 rule: a freshly minted token, one more handshake.
                    refresh = self._calls.issue(
                        lambda c: TokenRefreshDue(c, fresh=True), Purpose.AFTER_REFUSAL, again
                    )
                    return [refresh]
                self._connect_failed(now)
                return [
                    CallFailed(
                        "Opening the Insight progress socket", str(error), for_every_job=True
                    )
                ]
            case ReconcileDue():
                return self._check_failed(call.job_id, kind, error, now)
            case RunLogFetchDue():
                failed = CallFailed(
                    f"Fetching the run log of {call.job_id}", str(error), call.job_id
                )
                return [failed, *self._jobs.run_log_unavailable(call.job_id)]
        return []  # pragma: no cover - every call type is handled above

    def _token_failed(
        self, purpose: Purpose, refusals: int, error: InsightError, now: float
    ) -> Sequence[Output]:
        if purpose is Purpose.FIRST_TOKEN or error.permanent:
            # Without a token nothing can go on (see the module docstring).
            return self._fail_all(error)
        if purpose is Purpose.REFRESH:
            # Asked again after the token's retry interval (see Session.token_refresh_due).
            return [
                CallFailed(
                    "Refreshing the Insight token", f"{error}; retrying soon", for_every_job=True
                )
            ]
        self._connect_failed(now)
        return [
            CallFailed(
                "Getting a token for the Insight progress socket", str(error), for_every_job=True
            )
        ]

    def _check_failed(
        self, job_id: str, kind: ErrorMeaning, error: InsightError, now: float
    ) -> Sequence[Output]:
        if kind is ErrorMeaning.NOT_FOUND:
            return self._jobs.job_gone(job_id)
        if kind in (ErrorMeaning.PERMANENT, ErrorMeaning.REFUSED):
            return self._jobs.fail(job_id, error)
        self._jobs.check_failed(job_id, now)
        return [CallFailed(f"Checking compute job {job_id} over REST", str(error), job_id)]

    def _fail_all(self, error: InsightError) -> Sequence[Output]:
        """Every job fails with ``error``; the last event (job None) says the session did."""
        running = list(self._jobs.running)
        failed = [event for job_id in running for event in self._jobs.fail(job_id, error)]
        return [*failed, FollowFailed(None, error, self.server)]

    def _open_socket(self, refusals: int) -> ReconnectDue:
        token = self.session.token
        attempt = self.session.failures + 1
        again, quiet = self._opened_once, self._timer.in_outage
        return self._calls.issue(
            lambda c: ReconnectDue(attempt, c, token, reconnect=again, quiet=quiet),
            Purpose.SOCKET,
            refusals,
        )

    # ----------------------------------------------------------------------------- outages

    def _heard(self, now: float) -> list[Output]:
        """The server answered at ``now``; ends an outage under way (said once)."""
        back = self._timer.answered(now)
        return [] if back is None else [back]

    def _no_answer(self, now: float, error: str) -> list[Output]:
        """A call failed without an answer: the first one of an outage is said, once."""
        if self._timer.in_outage or not self._jobs.running:
            return []
        self._outage_said_at = now
        return [self._timer.unanswered(now, error)]

    # ----------------------------------------------------------------------------- time

    @_input
    def tick(self, now: float) -> Sequence[Output]:
        """Emit what is due at ``now``: token refresh, reconnect, REST checks, run-log fetches."""
        events: list[Output] = []
        unreachable_at = self._unreachable_at()
        if unreachable_at is not None and now >= unreachable_at:
            return self._unreachable(now)
        report_at = self._outage_said_at + self.config.outage_report_interval_seconds
        if self._timer.in_outage and self._jobs.running and now >= report_at:
            self._outage_said_at = now
            events.append(self._timer.unanswered(now))
        if self.session.token_refresh_due(now) and not self._calls.pending(Purpose.REFRESH):
            events.append(self._calls.issue(lambda c: TokenRefreshDue(c), Purpose.REFRESH))
        if self.session.due(now):
            if not self.session.auth.mint_due(now):
                events.append(self._open_socket(0))
            else:
                # No usable token for the handshake: get one first (the REST client's cache
                # serves it when it holds a fresher one).
                connect = self._calls.issue(
                    lambda c: TokenRefreshDue(c, fresh=False), Purpose.CONNECT
                )
                events.append(connect)
        return [*events, *self._jobs.due_calls(now)]

    def _unreachable_at(self) -> float | None:
        return self._timer.deadline() if self._jobs.running else None

    def _unreachable(self, now: float) -> Sequence[Output]:
        """Nothing from the server for the limit: every followed job fails, retryably."""
        running = list(self._jobs.running)
        errors = [(job_id, self._timer.give_up(now, job_id)) for job_id in running]
        self._timer.stop()  # Every job fails: nothing is left to wait for.
        return [event for job_id, error in errors for event in self._jobs.fail(job_id, error)]

    # ----------------------------------------------------------------------------- socket input

    @_input
    def receive_text(self, text: str | bytes, now: float) -> Sequence[Output]:
        """Handle one text frame from the server; bad input becomes an event, never an error."""
        back = self._heard(now)
        return [*back, *self._message(text, now)]

    def _message(self, text: str | bytes, now: float) -> Sequence[Output]:
        try:
            message = m.decode_server_message(text)
        except (RemoteProtocolError, ValueError, RecursionError) as exc:
            return [MessageRejected(str(exc) or type(exc).__name__)]
        self.session.message_received(error=isinstance(message, m.ErrorReported))
        match message:
            case m.PingReceived():
                self._queue(m.Pong(message.payload))
                return [PingAnswered()]
            case m.AppMessage():
                # Answered at once (like a pong), then the handler's events (§A10).
                job = self._jobs.live(message.compute_job_id)
                handler = job.app_messages if job is not None else None
                response, events = answer_app_message(message, handler, now)
                self._queue(response)
                return events
            case m.ErrorReported() if message.error_type == m.COMPUTE_JOB_NOT_FOUND:
                return self._jobs.not_found(message.compute_job_id, now)
            case m.ErrorReported():
                job_id, kind = message.compute_job_id, message.error_type
                return [ErrorReceived(job_id, kind, message.error_message)]
            case m.UnknownMessage():
                reason = f"unknown messageType {message.message_type!r}"
                return [MessageIgnored(reason, message.compute_job_id)]
        return self._jobs.job_message(message, now)

    # ----------------------------------------------------------------------------- internals

    def _queue(self, message: m.ClientMessage) -> None:
        self._outgoing.append(m.encode_client_message(message))


def _quietly(event: Output) -> Output:
    """``event`` at DEBUG and for no job's log when it is a failed call (an outage line, which
    every job hears of, says it instead)."""
    if isinstance(event, CallFailed):
        return dataclasses.replace(event, log_level=logging.DEBUG, for_every_job=False)
    return event
