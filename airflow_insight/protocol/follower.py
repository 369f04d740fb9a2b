"""The core of a progress WebSocket session: follow any number of compute jobs, sans I/O.

One :class:`Follower` per progress WebSocket *session* (it outlives reconnects). It follows any
number of jobs, multiplexed by ``computeJobId``. It never reads a clock, sleeps, or touches a
socket: the driver feeds it received text, the answers to the calls it asked for and the current
time (a float in the driver's clock, e.g. ``time.monotonic()``), sends what it queued, waits until
its next deadline, and hands the events to its caller. Every decision lives here or in the parts
it is made of, none in the drivers:

* :mod:`.session`: the socket's states (one transition table), backoff and the token;
* :mod:`.jobs`: what is known of each job, and the REST check schedule;
* :mod:`.runlog`: every line forwarded once and in order;
* :mod:`.calls`: the calls asked for, by id, and what an error answer means;
* :mod:`.appmessages`: the answer to a solver callback.

Driver loop (sync shown; the async driver is the same with ``await``)::

    follower = Follower(FollowerConfig(...), jitter_source=random.Random().random, server=url)
    events = deque(follower.start(clock()))              # asks for the first token
    ...                                                  # follow(job_id, now=...) at any time
    while follower.active:
        for text in follower.data_to_send():
            ws.send(text)                                # on failure: connection_lost(now)
        if not events:
            text = recv(until=follower.next_deadline())  # None on timeout
            now = clock()
            if text is not None:
                events.extend(follower.receive_text(text, now))
            events.extend(follower.tick(now))
        while events:
            event = events.popleft()
            on_event(event)                              # the adapter logs it, once
            if isinstance(event, Call):                  # TokenRefreshDue, ReconnectDue,
                try:                                     # ReconcileDue, RunLogFetchDue
                    result = perform(event)              # mint / open socket / GET ...
                except InsightError as exc:
                    events.extend(follower.call_failed(event.call_id, exc, clock()))
                else:
                    events.extend(follower.call_succeeded(event.call_id, result, clock()))
    a closed / broken socket -> follower.connection_lost(now)

Each call's result: ``TokenRefreshDue`` a :class:`~.tokens.Token`; ``ReconnectDue`` the socket's
``connection-id`` (or None); ``ReconcileDue`` the job document; ``RunLogFetchDue`` the text. A
call may be answered late (the async driver runs REST calls in threads) but exactly once.

Decisions where the protocol is silent:

* ``SUBSCRIBE`` goes out after every ``connection_opened`` for all jobs still followed, and also
  from :meth:`Follower.follow` on an open socket, even when the ``connection-id`` header worked:
  the documented fallback (§B9 #5) costs one message, and the replayed lines are deduplicated.
  Call ``follow`` after the submit returned, so the server knows the job.
* ``lastRunLogLine`` is the last line forwarded *without a gap*, so the server's replay fills
  holes (see :mod:`.runlog`); ``executionAttempts`` is 0 until a status names it.
* The first terminal status wins: a later non-terminal one never un-finishes a job, and a later
  different terminal one is ignored (e.g. ``DELETED`` after ``COMPLETED`` is the cleanup, not the
  job's end). Non-terminal statuses may go "backwards" (a requeued job returns to ``QUEUED``).
* A terminal status asks for the REST run log (``RunLogFetchDue``) when a ``runLogUrl`` is known;
  without one (a job cancelled while queued) the job finishes at once. ``RUNLOG_COMPLETED`` is
  never waited for.
* Except when the socket already brought the whole log: ``RUNLOG_COMPLETED`` says how many lines
  the log has (``totalLines``); when every line up to ``totalLines - 1`` was forwarded without a
  gap, none was given up and none waits in the buffer, the job finishes at its terminal status
  without the REST fetch (one full-log transfer saved per job; the outcome says
  ``run_log_complete``). Anything else still fetches: no ``RUNLOG_COMPLETED``, a gap, buffered
  lines, a total that disagrees with what was forwarded (more or fewer lines), a total from an
  earlier execution attempt (forgotten when ``executionAttempts`` grows), or a server that
  restarted line numbers for a new attempt.
* A terminal status that arrives *before* ``RUNLOG_COMPLETED`` fetches at once (never waiting,
  §A6), except as ``CURRENT_JOB_STATUS``, the answer to ``SUBSCRIBE`` for a job that ended
  before we subscribed: its replay follows at once, so the fetch waits ``REPLAY_GRACE_SECONDS``
  (at most the silence limit) for it. If ``RUNLOG_COMPLETED`` (or the last missing lines) then
  arrives while the fetch is due or outstanding and makes the log complete, the job finishes
  right then, and the fetch's answer is ignored when it comes: the fetch is the safe path, the
  shortcut only ever ends it early.
* ``COMPUTE_JOB_NOT_FOUND`` asks for a REST check of that job; without a ``computeJobId`` it asks
  for all followed jobs. A 404 over REST (:meth:`Follower.job_gone`) before any terminal status
  finishes the job as ``DELETED`` without fetching the run log (it went with the job).
* Liveness: a followed job not heard of for ``silence_limit_seconds`` (socket or REST) is
  checked over REST, so a silent but healthy socket degrades into REST polling at that pace.
  While the socket is down, checks follow the reconnect backoff, capped at the silence limit.
* Reconnect backoff: see :mod:`.session` (``jitter_source`` is a ``random.Random().random``-like
  callable owned by the driver; without one, no jitter). The core never gives up reconnecting:
  REST checks keep every job moving; what an error means is decided in :mod:`.calls`.
* A completed handshake does not reset the backoff; a socket that has *proven itself* does:
  one that delivered a message other than ``ERROR`` (status, run log, JSON ping...), or stayed
  open for ``stable_connection_seconds``. A socket lost before that counts as one more failure,
  so a server that accepts the handshake and closes at once is retried with growing delays, not
  every ``reconnect_initial_delay_seconds`` forever. ``ERROR`` does not count because a server
  refusing us (a bad token, say) typically sends one and then closes.
* ``connection_lost`` during a connect attempt (between ``ReconnectDue`` and
  ``connection_opened``/``connection_failed``) counts as that attempt failing: the attempt's
  state is cleared and a reconnect is scheduled with backoff, so the socket always comes back.
* ``APP_MESSAGE`` is answered ``interruptSolve: false`` even for a job not followed here: a
  callback waiting on this socket would otherwise fail someone's job after 60 s (§A10).
* The core owns the token in use (one :class:`~.tokens.Token`, value and timing): a refreshed
  one queues ``UPDATE_TOKEN`` when a socket is open (a closed socket gets it at its handshake).
  A handshake refused as unauthorised gets one fresh token and one more try (:mod:`.tokens`).
* :meth:`Follower.start` asks for the first token; if it cannot be had (refused credentials, or
  no answer within the REST client's retries) the session fails at once (:class:`FollowFailed`
  for every job, and the driver's ``open`` raises): without a token nothing can go on, and
  trying again in the submit would only double the wait (issue 11 #10).
* Unreachable server: when neither the socket nor any REST call has answered for
  ``unreachable_limit_seconds`` while jobs are followed, each job fails with
  :class:`~airflow_insight.exceptions.ServerUnreachable` (retryable; the next try re-attaches).
  A REST error *with* an HTTP answer (5xx, 404) counts as an answer; a network failure does not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from airflow_insight.exceptions import (
    ConfigurationError,
    InsightError,
    RemoteProtocolError,
    ServerUnreachable,
)
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.appmessages import AppMessageHandler, default_answer
from airflow_insight.protocol.calls import ErrorMeaning, OutstandingCalls, Purpose, meaning
from airflow_insight.protocol.events import (
    AppMessageAnswered,
    CallFailed,
    ErrorReceived,
    Event,
    FollowFailed,
    JobFinished,
    JobRequeued,
    MessageIgnored,
    MessageRejected,
    PingAnswered,
    ReconcileDue,
    ReconnectDue,
    RunLogFetchDue,
    StatusChanged,
    TokenRefreshDue,
)
from airflow_insight.protocol.jobs import CheckSchedule, FollowedJob, Phase, StatusFields
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.runlog import (
    DEFAULT_MAX_BUFFERED_LINES,
    DEFAULT_TAIL_LINES,
    RunLog,
)
from airflow_insight.protocol.session import Session, SessionState
from airflow_insight.protocol.statuses import JobStatus, is_terminal
from airflow_insight.protocol.tokens import Token, retry_with_fresh_token

__all__ = ["Follower", "FollowerConfig"]

#: How long a job found ended by the answer to ``SUBSCRIBE`` waits for the replay that follows
#: before its run log is fetched over REST (see ``_job_ended``).
REPLAY_GRACE_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class FollowerConfig:
    """Timing and size knobs of a :class:`Follower`; tests shrink the times to milliseconds."""

    #: Check a job over REST when nothing was heard of it for this long.
    silence_limit_seconds: float = 60.0
    reconnect_initial_delay_seconds: float = 0.5
    reconnect_max_delay_seconds: float = 30.0
    reconnect_multiplier: float = 2.0
    #: Each delay is scaled by a factor in ``[1 - jitter_fraction, 1 + jitter_fraction]``.
    jitter_fraction: float = 0.2
    #: How many forwarded run-log lines the outcome quotes.
    run_log_tail_lines: int = DEFAULT_TAIL_LINES
    max_buffered_lines: int = DEFAULT_MAX_BUFFERED_LINES
    #: Send ``SUBSCRIBE`` for a job as soon as it is followed on an open socket (§B9 #5).
    subscribe_on_follow: bool = True
    #: A socket open this long has proven itself: losing it later starts the backoff over.
    stable_connection_seconds: float = 10.0
    #: Fail a followed job with :class:`~airflow_insight.exceptions.ServerUnreachable` when
    #: neither the socket nor any REST call has answered for this long (None: never).
    unreachable_limit_seconds: float | None = 600.0

    def __post_init__(self) -> None:
        positive = {
            "silence_limit_seconds": self.silence_limit_seconds,
            "reconnect_initial_delay_seconds": self.reconnect_initial_delay_seconds,
            "reconnect_max_delay_seconds": self.reconnect_max_delay_seconds,
            "stable_connection_seconds": self.stable_connection_seconds,
        }
        if self.unreachable_limit_seconds is not None:
            positive["unreachable_limit_seconds"] = self.unreachable_limit_seconds
        for name, value in positive.items():
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, not {value!r}")
        if self.reconnect_multiplier < 1:
            raise ConfigurationError("reconnect_multiplier must be at least 1")
        if not 0 <= self.jitter_fraction < 1:
            raise ConfigurationError("jitter_fraction must be in [0, 1)")


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
        #: The server as error messages name it (its base URL; never credentials).
        self.server = server
        self.session = Session(self.config, jitter_source)
        self._jobs: dict[str, FollowedJob] = {}
        # The jobs not finished yet, so per-step work never walks the finished ones.
        self._running: dict[str, FollowedJob] = {}
        self._checks = CheckSchedule(self._running)
        self._calls = OutstandingCalls()
        self._outgoing: list[str] = []
        # When the server last answered anything (socket or REST); None: no job followed.
        self._heard_at: float | None = None

    def __repr__(self) -> str:
        # Never the token or any secret: the session's repr says only whether it has a token.
        return (
            f"Follower(server={self.server!r}, {self.session!r}, following={len(self._running)},"
            f" calls={len(self._calls)})"
        )

    # ----------------------------------------------------------------------------- state

    @property
    def is_open(self) -> bool:
        """True between ``connection_opened`` and ``connection_lost``/``connection_failed``."""
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
        return tuple(self._running)

    @property
    def active(self) -> bool:
        """True while some followed job has not finished."""
        return bool(self._running)

    @property
    def last_connection_error(self) -> str | None:
        """What the driver reported for the last failed connect or lost socket."""
        return self.session.last_error

    @property
    def outstanding_calls(self) -> int:
        """How many calls the driver has not answered yet."""
        return len(self._calls)

    def status_of(self, job_id: str) -> str | None:
        """The last status seen for a followed job (None when unknown or not followed)."""
        job = self._jobs.get(job_id)
        return job.status if job else None

    def subscriptions(self) -> tuple[m.Subscription, ...]:
        """What a ``SUBSCRIBE`` would carry now: one entry per job still running (§A5)."""
        return tuple(job.subscription() for job in self._following_phase())

    def data_to_send(self) -> list[str]:
        """Return and forget the JSON texts queued for the socket, oldest first."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do; None when nothing is scheduled."""
        deadlines = self.session.deadlines()
        check_at = self._checks.earliest()
        if check_at is not None:
            deadlines.append(check_at)
        unreachable_at = self._unreachable_at()
        if unreachable_at is not None:
            deadlines.append(unreachable_at)
        return min(deadlines, default=None)

    # ----------------------------------------------------------------------------- jobs

    def start(self, now: float) -> list[Event]:
        """Ask for the first token (answer it before following: see the module docstring)."""
        return [self._calls.issue(lambda c: TokenRefreshDue(c, fresh=False), Purpose.FIRST_TOKEN)]

    def follow(
        self,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        now: float,
        app_messages: AppMessageHandler | None = None,
    ) -> list[Event]:
        """Start following a submitted job, optionally resuming from what was already forwarded.

        ``app_messages`` answers the job's solver callbacks (see :mod:`.appmessages`).
        Following a job already followed does nothing (unfollow it first to start over).
        """
        if job_id in self._jobs:
            return []
        if not self._running:
            self._heard_at = now  # The unreachable limit counts from the first followed job.
        run_log = RunLog(
            job_id,
            execution_attempts=execution_attempts,
            last_forwarded_line=last_run_log_line,
            tail_lines=self.config.run_log_tail_lines,
            max_buffered_lines=self.config.max_buffered_lines,
        )
        job = FollowedJob(job_id, run_log, next_check_at=now + self.config.silence_limit_seconds)
        job.app_messages = app_messages
        self._jobs[job_id] = job
        self._running[job_id] = job
        self._checks.set(job, job.next_check_at)
        if self.session.is_open:
            if self.config.subscribe_on_follow:
                self._queue(m.Subscribe((job.subscription(),)))
        else:
            # Nothing will open a socket by itself: ask for one now (if not under way).
            self.session.wanted(now)
        return []

    def unfollow(self, job_id: str) -> list[Event]:
        """Forget a job; later messages about it are ignored. No message goes to the server."""
        self._jobs.pop(job_id, None)
        self._running.pop(job_id, None)
        return []

    # ----------------------------------------------------------------------------- connection

    def connection_opened(self, connection_id: str | None, now: float) -> list[Event]:
        """A socket is open: queue ``SUBSCRIBE`` for every job still running (§A5)."""
        self.session.opened(connection_id, now)
        self._heard_at = now
        running = self._following_phase()
        for job in running:
            job.down_checks = 0
            # The CURRENT_JOB_STATUS answer should come well within this window.
            self._checks.set(job, now + self.config.silence_limit_seconds)
        if running:
            self._queue(m.Subscribe(tuple(job.subscription() for job in running)))
        return []

    def connection_lost(self, now: float, reason: str | None = None) -> list[Event]:
        """The open socket closed or broke: schedule a reconnect and REST checks."""
        if not self.session.lost(now, reason):
            return []
        # Texts queued for the dead socket mean nothing to the next one (it gets a SUBSCRIBE).
        self._outgoing.clear()
        for job in self._following_phase():
            job.down_checks = 0
            self._checks.set(job, min(job.next_check_at, now + self.session.backoff(0)))
        return []

    def connection_failed(self, now: float, error: str | None = None) -> list[Event]:
        """A connect attempt failed: back off further before the next one."""
        self.session.failed(now, error)
        self._outgoing.clear()
        return []

    # ----------------------------------------------------------------------------- tokens

    def token_refreshed(self, token: Token, now: float) -> list[Event]:
        """A token is in use: schedule its refresh; queue ``UPDATE_TOKEN`` on an open socket."""
        self.session.token_in_use(token)
        if self.session.is_open:
            self._queue(m.UpdateToken(token.value))
        return []

    # ----------------------------------------------------------------------------- call answers

    def call_succeeded(self, call_id: int, result: Any, now: float) -> list[Event]:
        """The driver performed call ``call_id``; ``result`` is its answer (see the docstring)."""
        call, purpose, refusals = self._calls.take(call_id)
        self._heard_at = now
        match call:
            case TokenRefreshDue():
                events = self.token_refreshed(result, now)
                if purpose is Purpose.FIRST_TOKEN and self.session.state is SessionState.IDLE:
                    # The socket opens before the first submit, so the submit can name it.
                    self.session.wanted(now)
                    self.session.due(now)
                    events.append(self._open_socket(refusals))
                elif purpose in (Purpose.CONNECT, Purpose.AFTER_REFUSAL):
                    events.append(self._open_socket(refusals))
                return events
            case ReconnectDue():
                return self.connection_opened(result, now)
            case ReconcileDue():
                return self.job_document_received(call.job_id, result, now)
            case RunLogFetchDue():
                return self.run_log_fetched(call.job_id, result, now)
        return []  # pragma: no cover - every call type is handled above

    def call_failed(self, call_id: int, error: InsightError, now: float) -> list[Event]:
        """The driver's call ``call_id`` failed with ``error``: decide what it means, once."""
        call, purpose, refusals = self._calls.take(call_id)
        kind = meaning(error)
        if kind is not ErrorMeaning.NO_ANSWER:
            self._heard_at = now  # An HTTP error is an answer from the server.
        match call:
            case TokenRefreshDue():
                return self._token_failed(purpose, refusals, error, now)
            case ReconnectDue():
                if kind is ErrorMeaning.REFUSED and retry_with_fresh_token(refusals + 1):
                    # The 401 rule: one freshly minted token, one more handshake.
                    refresh = self._calls.issue(
                        lambda c: TokenRefreshDue(c, fresh=True),
                        Purpose.AFTER_REFUSAL,
                        refusals + 1,
                    )
                    return [refresh]
                self.connection_failed(now, str(error))
                return [CallFailed("Opening the Insight progress socket", str(error))]
            case ReconcileDue():
                return self._check_failed(call.job_id, kind, error, now)
            case RunLogFetchDue():
                failed = CallFailed(
                    f"Fetching the run log of {call.job_id}", str(error), call.job_id
                )
                return [failed, *self.run_log_unavailable(call.job_id, now)]
        return []  # pragma: no cover - every call type is handled above

    def _token_failed(
        self, purpose: Purpose, refusals: int, error: InsightError, now: float
    ) -> list[Event]:
        if purpose is Purpose.FIRST_TOKEN or error.permanent:
            # Without a token nothing can go on (see the module docstring).
            return self._fail_all(error)
        if purpose is Purpose.REFRESH:
            # Asked again after the token's retry interval (see Session.token_refresh_due).
            return [CallFailed("Refreshing the Insight token", f"{error}; retrying soon")]
        self.connection_failed(now, str(error))
        return [CallFailed("Getting a token for the Insight progress socket", str(error))]

    def _check_failed(
        self, job_id: str, kind: ErrorMeaning, error: InsightError, now: float
    ) -> list[Event]:
        if kind is ErrorMeaning.NOT_FOUND:
            return self.job_gone(job_id, now)
        if kind in (ErrorMeaning.PERMANENT, ErrorMeaning.REFUSED):
            return self._fail(job_id, error)
        self.reconcile_failed(job_id, now)
        return [CallFailed(f"Checking compute job {job_id} over REST", str(error), job_id)]

    def _fail(self, job_id: str, error: InsightError) -> list[Event]:
        """Stop following ``job_id``, its last event an error; a job already ended keeps it."""
        job = self._running.get(job_id)
        if job is None:
            return []  # Ended (or unfollowed) while the call was out: its end stands.
        job.phase = Phase.FINISHED
        self._running.pop(job_id, None)
        return [FollowFailed(job_id, error)]

    def _fail_all(self, error: InsightError) -> list[Event]:
        """Every job fails with ``error``; the last event (job None) says the session did."""
        failed = [event for job_id in list(self._running) for event in self._fail(job_id, error)]
        return [*failed, FollowFailed(None, error)]

    def _open_socket(self, refusals: int) -> ReconnectDue:
        token = self.session.token
        attempt = self.session.failures + 1
        return self._calls.issue(
            lambda c: ReconnectDue(attempt, c, token), Purpose.SOCKET, refusals
        )

    # ----------------------------------------------------------------------------- time

    def tick(self, now: float) -> list[Event]:
        """Emit what is due at ``now``: token refresh, reconnect, REST checks, run-log fetches."""
        events: list[Event] = []
        unreachable_at = self._unreachable_at()
        if unreachable_at is not None and now >= unreachable_at:
            return self._unreachable(now)
        if self.session.token_refresh_due(now) and not self._calls.pending(Purpose.REFRESH):
            events.append(self._calls.issue(lambda c: TokenRefreshDue(c), Purpose.REFRESH))
        if self.session.due(now):
            token = self.session.token
            if token is not None and not token.refresh_due(now):
                events.append(self._open_socket(0))
            else:
                # No usable token for the handshake: get one first (the REST client's cache
                # serves it when it holds a fresher one).
                connect = self._calls.issue(
                    lambda c: TokenRefreshDue(c, fresh=False), Purpose.CONNECT
                )
                events.append(connect)
        while (job := self._checks.pop_due(now)) is not None:
            # Re-asked after the silence limit when the driver never answers.
            self._checks.set(job, now + self.config.silence_limit_seconds)
            if job.phase is Phase.FOLLOWING:
                if not self._calls.pending(Purpose.CHECK, job.job_id):
                    events.append(self._ask_check(job.job_id))
            elif job.run_log_url is not None and not self._calls.pending(
                Purpose.RUN_LOG, job.job_id
            ):
                events.append(self._ask_run_log(job))
        return events

    def _ask_check(self, job_id: str) -> ReconcileDue:
        return self._calls.issue(lambda c: ReconcileDue(job_id, c), Purpose.CHECK)

    def _ask_run_log(self, job: FollowedJob) -> RunLogFetchDue:
        url = job.run_log_url or ""
        return self._calls.issue(lambda c: RunLogFetchDue(job.job_id, url, c), Purpose.RUN_LOG)

    def _unreachable_at(self) -> float | None:
        limit = self.config.unreachable_limit_seconds
        if limit is None or self._heard_at is None or not self._running:
            return None
        return self._heard_at + limit

    def _unreachable(self, now: float) -> list[Event]:
        """Nothing from the server for the limit: every followed job fails, retryably."""
        waited = now - (self._heard_at or now)
        events: list[Event] = []
        for job_id in list(self._running):
            error = ServerUnreachable(
                f"no answer from {self.server} for {waited:.0f} s (neither the progress socket"
                f" nor REST) while following Insight compute job {job_id}; the job may still be"
                " running there: a retry of the task re-attaches to it once the server is back"
                " (limit: unreachable_limit_seconds)"
            )
            events.extend(self._fail(job_id, error))
        return events

    # ----------------------------------------------------------------------------- socket input

    def receive_text(self, text: str | bytes, now: float) -> list[Event]:
        """Handle one text frame from the server; bad input becomes an event, never an error."""
        self._heard_at = now
        try:
            message = m.decode_server_message(text)
        except (RemoteProtocolError, ValueError, RecursionError) as exc:
            return [MessageRejected(str(exc) or type(exc).__name__)]
        if self.session.is_open and not isinstance(message, m.ErrorReported):
            self.session.proven = True
        match message:
            case m.PingReceived():
                self._queue(m.Pong(message.payload))
                return [PingAnswered()]
            case m.AppMessage():
                return self._answer_app_message(message, now)
            case m.ErrorReported():
                return self._on_error(message, now)
            case m.UnknownMessage():
                reason = f"unknown messageType {message.message_type!r}"
                return [MessageIgnored(reason, message.compute_job_id)]
        job = self._jobs.get(message.compute_job_id)
        if job is None or job.phase is Phase.FINISHED:
            state = "finished" if job else "not followed"
            reason = f"{type(message).__name__} for job {message.compute_job_id!r} ({state})"
            return [MessageIgnored(reason, message.compute_job_id)]
        if job.phase is Phase.FOLLOWING:
            # Pushes the check on: no heap operation (see CheckSchedule).
            self._checks.set(job, now + self.config.silence_limit_seconds)
        match message:
            case m.JobStatusReport():
                return self._apply_status(job, StatusFields.from_report(message), now)
            case m.RunLogUpdated():
                # Lines arriving after the terminal status are still live lines (§B9 #10).
                events: list[Event] = list(job.run_log.accept(message.start_line, message.lines))
                return events + self._finish_if_fetch_unneeded(job)
            case m.RunLogCompleted():
                if message.total_lines is not None and message.total_lines >= 0:
                    job.total_lines = message.total_lines
                return self._finish_if_fetch_unneeded(job)
        return []  # pragma: no cover - every job message type is handled above

    def _answer_app_message(self, message: m.AppMessage, now: float) -> list[Event]:
        """Queue the answer at once (like a pong), then the handler's events (§A10)."""
        job = self._jobs.get(message.compute_job_id)
        handler = job.app_messages if job is not None and job.phase is Phase.FOLLOWING else None
        answered = AppMessageAnswered(
            message.compute_job_id, message.app_message_id, message.app_message_type
        )
        if handler is None:
            self._queue(default_answer(message))
            return [answered]
        answered = dataclasses.replace(answered, handled=True)
        try:
            response, produced = handler.answer(message, now)
        except Exception as exc:  # A handler's bug must not leave the solve waiting.
            self._queue(default_answer(message))
            return [answered, MessageRejected(f"app message handler failed: {exc!r}")]
        # The ids are the core's business: the answer always names the message it answers.
        self._queue(
            dataclasses.replace(
                response,
                compute_job_id=message.compute_job_id,
                app_message_id=message.app_message_id,
            )
        )
        return [answered, *produced]

    def _on_error(self, message: m.ErrorReported, now: float) -> list[Event]:
        if message.error_type != m.COMPUTE_JOB_NOT_FOUND:
            return [
                ErrorReceived(message.compute_job_id, message.error_type, message.error_message)
            ]
        if message.compute_job_id is None:
            targets = self._following_phase()
        else:
            job = self._jobs.get(message.compute_job_id)
            targets = [job] if job is not None and job.phase is Phase.FOLLOWING else []
        if not targets:
            reason = f"COMPUTE_JOB_NOT_FOUND for job {message.compute_job_id!r} (not followed)"
            return [MessageIgnored(reason, message.compute_job_id)]
        events: list[Event] = []
        for job in targets:
            # The server lost track of it (finished long ago, or never known): ask REST (§B9 #13).
            self._checks.set(job, now + self.config.silence_limit_seconds)
            if not self._calls.pending(Purpose.CHECK, job.job_id):
                events.append(self._ask_check(job.job_id))
        return events

    # ----------------------------------------------------------------------------- REST input

    def job_document_received(
        self, job_id: str, document: Mapping[str, Any], now: float
    ) -> list[Event]:
        """Feed a ``GET /api/compute-jobs/{id}`` document (the answer to ``ReconcileDue``)."""
        self._calls.discard(Purpose.CHECK, job_id)
        job = self._jobs.get(job_id)
        if job is None or job.phase is Phase.FINISHED:
            return []
        if job.phase is Phase.FOLLOWING:
            self._schedule_check(job, now)
        try:
            fields = StatusFields.from_document(document)
        except RemoteProtocolError as exc:
            return [MessageRejected(f"job {job_id!r}: {exc}")]
        return self._apply_status(job, fields, now)

    def job_gone(self, job_id: str, now: float) -> list[Event]:
        """The REST check answered 404: the job no longer exists (§A8, §B9 #13)."""
        self._calls.discard(Purpose.CHECK, job_id)
        job = self._jobs.get(job_id)
        if job is None or job.phase is not Phase.FOLLOWING:
            # Finished, or its terminal status is known and the run-log fetch will finish it.
            return []
        job.status = JobStatus.DELETED.value
        job.detail = "the job no longer exists on the Insight server (HTTP 404)"
        changed = StatusChanged(
            job_id, job.status, job.model_status, job.run_log.execution_attempts
        )
        # The run log went with the job: it is not known complete.
        return [changed, *self._finish(job)]

    def reconcile_failed(self, job_id: str, now: float, reason: str | None = None) -> list[Event]:
        """The REST check failed (network, 5xx after retries): try again on the check schedule."""
        del reason  # The schedule does not depend on why.
        self._calls.discard(Purpose.CHECK, job_id)
        job = self._jobs.get(job_id)
        if job is not None and job.phase is Phase.FOLLOWING:
            self._schedule_check(job, now)
        return []

    def run_log_fetched(self, job_id: str, text: str, now: float) -> list[Event]:
        """Feed the final REST run log (the answer to ``RunLogFetchDue``); the job finishes."""
        self._calls.discard(Purpose.RUN_LOG, job_id)
        job = self._jobs.get(job_id)
        if job is None or job.phase is not Phase.FETCHING_RUN_LOG:
            return []
        filled = job.run_log.fill_from_text(text)
        # Complete unless some line was given up (now, or earlier while streaming).
        return [*filled, *self._finish(job, run_log_complete=not job.run_log.lines_lost)]

    def run_log_unavailable(
        self, job_id: str, now: float, reason: str | None = None
    ) -> list[Event]:
        """The final run log could not be fetched: finish with the lines the socket brought."""
        del reason  # Buffered lines and gaps are reported either way.
        self._calls.discard(Purpose.RUN_LOG, job_id)
        job = self._jobs.get(job_id)
        if job is None or job.phase is not Phase.FETCHING_RUN_LOG:
            return []
        return self._finish(job)

    # ----------------------------------------------------------------------------- internals

    def _following_phase(self) -> list[FollowedJob]:
        return [job for job in self._running.values() if job.phase is Phase.FOLLOWING]

    def _queue(self, message: m.ClientMessage) -> None:
        self._outgoing.append(m.encode_client_message(message))

    def _schedule_check(self, job: FollowedJob, now: float) -> None:
        """Plan the next REST check: the silence limit, or the backoff while the socket is down."""
        interval = self.config.silence_limit_seconds
        if not self.session.is_open:
            interval = min(interval, self.session.backoff(job.down_checks))
            job.down_checks += 1
        self._checks.set(job, now + interval)

    def _apply_status(self, job: FollowedJob, fields: StatusFields, now: float) -> list[Event]:
        if job.phase is not Phase.FOLLOWING:
            return self._after_terminal(job, fields)
        events: list[Event] = []
        attempts = fields.execution_attempts
        if attempts is not None and attempts > job.run_log.execution_attempts:
            if job.run_log.execution_attempts > 0:
                events.append(JobRequeued(job.job_id, attempts))
                # A total sent for the earlier attempt says nothing about the new one.
                job.total_lines = None
            job.run_log.new_attempt(attempts)
        # Null model status and URLs mean "not yet": never erase what an earlier report said.
        job.model_status = fields.model_status or job.model_status
        job.result_url = fields.result_url or job.result_url
        job.run_log_url = fields.run_log_url or job.run_log_url
        if fields.status != job.status:
            job.status = fields.status
            events.append(
                StatusChanged(
                    job.job_id, fields.status, job.model_status, job.run_log.execution_attempts
                )
            )
        if is_terminal(fields.status):
            events.extend(self._job_ended(job, now, replay_follows=fields.current))
        return events

    def _after_terminal(self, job: FollowedJob, fields: StatusFields) -> list[Event]:
        """A status after the terminal one: fill in missing fields, never change the end."""
        if fields.status != job.status:
            reason = f"status {fields.status} for job {job.job_id!r} after terminal {job.status}"
            return [MessageIgnored(reason, job.job_id)]
        job.model_status = job.model_status or fields.model_status
        job.result_url = job.result_url or fields.result_url
        job.run_log_url = job.run_log_url or fields.run_log_url
        return []

    def _job_ended(self, job: FollowedJob, now: float, *, replay_follows: bool) -> list[Event]:
        job.phase = Phase.FETCHING_RUN_LOG
        if job.run_log_url is None or job.socket_brought_whole_log():
            # Never ran (e.g. cancelled while queued): there is no run log to fetch. Or the
            # socket brought every line, as RUNLOG_COMPLETED counts them: nothing to fill.
            return self._finish(job, run_log_complete=job.socket_brought_whole_log())
        if replay_follows:
            # The answer to SUBSCRIBE for a job that ended before we subscribed: the replay of
            # its lines (and RUNLOG_COMPLETED) follows on the socket. Fetch only if it has not
            # completed the log within a short grace (a bounded delay, never a wait for
            # RUNLOG_COMPLETED): one GET saved per job re-attached after its end.
            grace = min(REPLAY_GRACE_SECONDS, self.config.silence_limit_seconds)
            self._checks.set(job, now + grace)
            return []
        self._checks.set(job, now + self.config.silence_limit_seconds)
        return [self._ask_run_log(job)]

    def _finish_if_fetch_unneeded(self, job: FollowedJob) -> list[Event]:
        """After the terminal status, while the fetch is outstanding: end as soon as the
        socket completed the log (the fetch's answer is then ignored)."""
        if job.phase is Phase.FETCHING_RUN_LOG and job.socket_brought_whole_log():
            return self._finish(job, run_log_complete=True)
        return []

    def _finish(self, job: FollowedJob, *, run_log_complete: bool = False) -> list[Event]:
        events: list[Event] = list(job.run_log.flush())
        job.phase = Phase.FINISHED
        self._running.pop(job.job_id, None)
        outcome = JobOutcome(
            compute_job_id=job.job_id,
            status=job.status or JobStatus.DELETED.value,
            model_status=job.model_status,
            execution_attempts=job.run_log.execution_attempts,
            result_url=job.result_url,
            run_log_url=job.run_log_url,
            last_run_log_line=job.run_log.last_forwarded_line,
            run_log_tail=job.run_log.tail,
            detail=job.detail,
            run_log_complete=run_log_complete and not job.run_log.lines_lost,
        )
        events.append(JobFinished(outcome))
        return events
