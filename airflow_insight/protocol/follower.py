"""The session state machine: follow any number of compute jobs over one WebSocket, sans I/O.

One :class:`Follower` per progress WebSocket *session* (it outlives reconnects). It follows any
number of jobs, multiplexed by ``computeJobId``. It never reads a clock, sleeps, or touches a
socket: the driver feeds it received text and the current time (a float in the driver's clock,
e.g. ``time.monotonic()``), sends what it queues, waits until its next deadline, and acts on the
events it returns. Every message-type decision lives here, none in the drivers.

Driver loop (sync shown; the async driver is the same with ``await``)::

    follower = Follower(FollowerConfig(...), jitter_source=random.Random().random)
    token = rest.current_token()
    follower.token_refreshed(token.value, token.expires_at, clock(),
                             lifetime_seconds=token.lifetime_seconds)
    ws = connect(token); follower.connection_opened(ws.connection_id, clock())
    doc = rest.submit_job(request, payload, ws.connection_id)
    follower.follow(job_id, now=clock())                  # queues SUBSCRIBE (fallback, §B9 #5)
    events = deque()
    while follower.active:
        for text in follower.data_to_send():
            ws.send(text)                                 # on failure: connection_lost(now)
        if not events:
            deadline = follower.next_deadline()           # None: nothing scheduled at all
            timeout = None if deadline is None else max(0.0, deadline - clock())
            text = ws.recv(timeout=timeout)               # None when the timeout passed;
                                                          # no socket open: just sleep(timeout)
            now = clock()
            if text is not None:
                events.extend(follower.receive_text(text, now))
            events.extend(follower.tick(now))
        while events:
            event = events.popleft()
            log.log(event.log_level, event.describe())
            events.extend(handle(event))                  # one line per event type:

    handle(TokenRefreshDue)  -> t = rest.refresh_token(); follower.token_refreshed(t.value,
                                t.expires_at, now, lifetime_seconds=t.lifetime_seconds)
    handle(ReconnectDue)     -> ws = connect(rest.current_token()) then
                                follower.connection_opened(ws.connection_id, now)
                                or, on failure, follower.connection_failed(now, str(exc))
    handle(ReconcileDue)     -> follower.job_document_received(id, rest.get_job(id), now)
                                or follower.job_gone(id, now) on JobNotFound
                                or follower.reconcile_failed(id, now, str(exc)) on other errors
    handle(RunLogFetchDue)   -> follower.run_log_fetched(id, rest.get_run_log(url), now)
                                or follower.run_log_unavailable(id, now, str(exc))
    handle(RunLogLines)      -> log each line; handle(JobRequeued) -> log the marker line
    handle(JobFinished)      -> hand event.outcome to whoever waits for that job
    a closed / broken socket -> follower.connection_lost(now); stop using ws

Answer every ``...Due`` event with exactly one of the listed calls. If a REST answer never
comes, the core asks again (``ReconcileDue``/``RunLogFetchDue`` after ``silence_limit_seconds``,
``TokenRefreshDue`` after a twelfth of the token lifetime), so nothing waits forever;
``ReconnectDue`` is asked once and waits for ``connection_opened``/``connection_failed`` (REST
checks keep every job moving meanwhile). Methods that can
produce events return them; the others only change state and schedule work for :meth:`tick`.

Public API (all times are floats in the driver's clock)::

    Follower(config: FollowerConfig | None = None, *, jitter_source: (() -> float) | None = None)
    follow(job_id, *, execution_attempts=0, last_run_log_line=-1, now) -> None
    unfollow(job_id) -> None
    connection_opened(connection_id: str | None, now) -> None
    connection_lost(now, reason: str | None = None) -> None
    connection_failed(now, error: str | None = None) -> None
    receive_text(text: str | bytes, now) -> list[Event]
    tick(now) -> list[Event]
    token_refreshed(token: str, expires_at, now, *, lifetime_seconds=None) -> None
    job_document_received(job_id, document: Mapping, now) -> list[Event]
    job_gone(job_id, now) -> list[Event]
    reconcile_failed(job_id, now, reason: str | None = None) -> None
    run_log_fetched(job_id, text: str, now) -> list[Event]
    run_log_unavailable(job_id, now, reason: str | None = None) -> list[Event]
    data_to_send() -> list[str]
    next_deadline() -> float | None
    subscriptions() -> tuple[Subscription, ...]
    status_of(job_id) -> str | None
    properties: is_open, connection_id, following, active, last_connection_error

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
  §A6). If ``RUNLOG_COMPLETED`` (or the last missing lines) then arrives while the fetch is
  outstanding and makes the log complete, the job finishes right then, and the fetch's answer is
  ignored when it comes: the fetch is the safe path, the shortcut only ever ends it early.
* ``COMPUTE_JOB_NOT_FOUND`` asks for a REST check of that job; without a ``computeJobId`` it asks
  for all followed jobs. A 404 over REST (:meth:`Follower.job_gone`) before any terminal status
  finishes the job as ``DELETED`` without fetching the run log (it went with the job).
* Liveness: a followed job not heard of for ``silence_limit_seconds`` (socket or REST) is
  checked over REST, so a silent but healthy socket degrades into REST polling at that pace.
  While the socket is down, checks follow the reconnect backoff, capped at the silence limit.
* Reconnect backoff: ``initial * multiplier ** failures`` capped at ``max``, times a jitter
  factor in ``[1 - jitter_fraction, 1 + jitter_fraction]`` drawn from ``jitter_source`` (a
  ``random.Random().random``-like callable owned by the driver; without one, no jitter). The
  core never gives up reconnecting: REST checks keep every job moving; the driver decides
  when an error is permanent.
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
* The bearer token is never stored: ``token_refreshed`` keeps only its timing and queues
  ``UPDATE_TOKEN`` when a socket is open (a closed socket gets the new token at its handshake).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
from collections.abc import Callable, Mapping
from typing import Any

from airflow_insight.exceptions import ConfigurationError, RemoteProtocolError
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.appmessages import AppMessageHandler, default_answer
from airflow_insight.protocol.events import (
    AppMessageAnswered,
    ErrorReceived,
    Event,
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
from airflow_insight.protocol.outcome import JobOutcome, document_text
from airflow_insight.protocol.runlog import (
    DEFAULT_MAX_BUFFERED_LINES,
    DEFAULT_TAIL_LINES,
    RunLog,
)
from airflow_insight.protocol.statuses import JobStatus, is_terminal
from airflow_insight.protocol.tokens import TokenTiming

__all__ = ["Follower", "FollowerConfig"]


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


class _Phase(enum.Enum):
    FOLLOWING = "following"
    #: A terminal status was seen; waiting for the REST run log.
    FETCHING_RUN_LOG = "fetching_run_log"
    FINISHED = "finished"


@dataclasses.dataclass(slots=True)
class _Job:
    """What the follower knows of one job."""

    job_id: str
    run_log: RunLog
    next_check_at: float
    status: str | None = None
    model_status: str | None = None
    result_url: str | None = None
    run_log_url: str | None = None
    detail: str | None = None
    phase: _Phase = _Phase.FOLLOWING
    #: REST checks made while the socket was down, for the check backoff.
    down_checks: int = 0
    #: ``totalLines`` of the last ``RUNLOG_COMPLETED`` for the current attempt, if any.
    total_lines: int | None = None
    #: The time of this job's live entry in the check heap (None: it has none).
    queued_at: float | None = None
    #: Answers this job's ``APP_MESSAGE``s (None: the default answer).
    app_messages: AppMessageHandler | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _StatusFields:
    """The status fields shared by status messages and REST job documents (§B3.4, §B4.7.1)."""

    status: str
    model_status: str | None
    execution_attempts: int | None
    result_url: str | None
    run_log_url: str | None

    @classmethod
    def from_report(cls, report: m.JobStatusReport) -> _StatusFields:
        return cls(
            report.status,
            report.model_status,
            report.execution_attempts,
            report.result_url,
            report.run_log_url,
        )

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> _StatusFields:
        """Read a REST job document as liberally as a status message (both spellings)."""
        if document_text(document, "status") is None:
            # Unlike a caller polling a job, the follower must not guess a status.
            raise RemoteProtocolError("job document without a status")
        # Missing attempts read as 0, which never counts as a requeue: the same as "unknown".
        outcome = JobOutcome.from_job_document("", document)
        return cls(
            outcome.status,
            outcome.model_status,
            outcome.execution_attempts,
            outcome.result_url,
            outcome.run_log_url,
        )


class Follower:
    """Follow compute jobs over one WebSocket session; see the module docstring."""

    def __init__(
        self,
        config: FollowerConfig | None = None,
        *,
        jitter_source: Callable[[], float] | None = None,
    ) -> None:
        self.config = config or FollowerConfig()
        self._jitter_source = jitter_source
        self._jobs: dict[str, _Job] = {}
        # The jobs not finished yet, so per-step work never walks the finished ones.
        self._running: dict[str, _Job] = {}
        # (next check time, job id), lazily maintained: see _set_check and _earliest_check.
        self._checks: list[tuple[float, str]] = []
        self._outgoing: list[str] = []
        self._open = False
        self._connection_id: str | None = None
        self._failures = 0
        self._reconnect_at: float | None = None
        # True between a ReconnectDue and the driver's connection_opened/connection_failed.
        self._connecting = False
        # When the open socket opened, and whether it delivered a message (see the docstring).
        self._opened_at = 0.0
        self._proven = False
        self._last_connection_error: str | None = None
        self._token: TokenTiming | None = None
        self._token_due_at: float | None = None

    # ----------------------------------------------------------------------------- state

    @property
    def is_open(self) -> bool:
        """True between ``connection_opened`` and ``connection_lost``/``connection_failed``."""
        return self._open

    @property
    def connection_id(self) -> str | None:
        """The ``connection-id`` of the open socket, if the driver could read it."""
        return self._connection_id

    @property
    def following(self) -> tuple[str, ...]:
        """The ids of followed jobs that have not finished yet."""
        return tuple(job.job_id for job in self._unfinished())

    @property
    def active(self) -> bool:
        """True while some followed job has not finished."""
        return bool(self._running)

    @property
    def last_connection_error(self) -> str | None:
        """What the driver reported for the last failed connect or lost socket."""
        return self._last_connection_error

    def status_of(self, job_id: str) -> str | None:
        """The last status seen for a followed job (None when unknown or not followed)."""
        job = self._jobs.get(job_id)
        return job.status if job else None

    def subscriptions(self) -> tuple[m.Subscription, ...]:
        """What a ``SUBSCRIBE`` would carry now: one entry per job still running (§A5)."""
        running = [job for job in self._unfinished() if job.phase is _Phase.FOLLOWING]
        return self._subscriptions_for(running)

    def data_to_send(self) -> list[str]:
        """Return and forget the JSON texts queued for the socket, oldest first."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do; None when nothing is scheduled."""
        deadlines = []
        check_at = self._earliest_check()
        if check_at is not None:
            deadlines.append(check_at)
        if self._token_due_at is not None:
            deadlines.append(self._token_due_at)
        if self._reconnect_at is not None and not self._open:
            deadlines.append(self._reconnect_at)
        return min(deadlines, default=None)

    # ----------------------------------------------------------------------------- jobs

    def follow(
        self,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        now: float,
        app_messages: AppMessageHandler | None = None,
    ) -> None:
        """Start following a submitted job, optionally resuming from what was already forwarded.

        ``app_messages`` answers the job's solver callbacks (see :mod:`.appmessages`).
        Following a job already followed does nothing (unfollow it first to start over).
        """
        if job_id in self._jobs:
            return
        run_log = RunLog(
            job_id,
            execution_attempts=execution_attempts,
            last_forwarded_line=last_run_log_line,
            tail_lines=self.config.run_log_tail_lines,
            max_buffered_lines=self.config.max_buffered_lines,
        )
        job = _Job(job_id, run_log, next_check_at=now + self.config.silence_limit_seconds)
        job.app_messages = app_messages
        self._jobs[job_id] = job
        self._running[job_id] = job
        self._set_check(job, job.next_check_at)
        if self._open:
            if self.config.subscribe_on_follow:
                self._queue(m.Subscribe(self._subscriptions_for([job])))
        elif self._reconnect_at is None and not self._connecting:
            # Nothing will open a socket by itself: ask for one now.
            self._reconnect_at = now

    def unfollow(self, job_id: str) -> None:
        """Forget a job; later messages about it are ignored. No message goes to the server."""
        self._jobs.pop(job_id, None)
        self._running.pop(job_id, None)

    # ----------------------------------------------------------------------------- connection

    def connection_opened(self, connection_id: str | None, now: float) -> None:
        """A socket is open: queue ``SUBSCRIBE`` for every job still running (§A5)."""
        self._open = True
        self._connecting = False
        self._connection_id = connection_id
        # The failure count is kept until the socket proves itself (see the module docstring).
        self._opened_at = now
        self._proven = False
        self._reconnect_at = None
        running = [job for job in self._unfinished() if job.phase is _Phase.FOLLOWING]
        for job in running:
            job.down_checks = 0
            # The CURRENT_JOB_STATUS answer should come well within this window.
            self._set_check(job, now + self.config.silence_limit_seconds)
        if running:
            self._queue(m.Subscribe(self._subscriptions_for(running)))

    def connection_lost(self, now: float, reason: str | None = None) -> None:
        """The open socket closed or broke: schedule a reconnect and REST checks."""
        if reason is not None:
            self._last_connection_error = reason
        if self._connecting and not self._open:
            # Lost while a connect attempt is under way: that attempt failed; try again later.
            self.connection_failed(now)
            return
        if not self._open:
            return  # Already known to be down: a second report changes nothing.
        self._open = False
        self._connection_id = None
        # Texts queued for the dead socket mean nothing to the next one (it gets a SUBSCRIBE).
        self._outgoing.clear()
        if self._proven or now - self._opened_at >= self.config.stable_connection_seconds:
            self._failures = 0
        else:
            self._failures += 1
        self._reconnect_at = now + self._backoff(self._failures)
        for job in self._unfinished():
            if job.phase is _Phase.FOLLOWING:
                job.down_checks = 0
                self._set_check(job, min(job.next_check_at, now + self._backoff(0)))

    def connection_failed(self, now: float, error: str | None = None) -> None:
        """A connect attempt failed: back off further before the next one."""
        if error is not None:
            self._last_connection_error = error
        self._open = False
        self._connecting = False
        self._connection_id = None
        self._outgoing.clear()
        self._failures += 1
        self._reconnect_at = now + self._backoff(self._failures)

    # ----------------------------------------------------------------------------- tokens

    def token_refreshed(
        self,
        token: str,
        expires_at: float,
        now: float,
        *,
        lifetime_seconds: float | None = None,
    ) -> None:
        """A token is in use: schedule its refresh; queue ``UPDATE_TOKEN`` on an open socket.

        ``lifetime_seconds`` gives the token's full lifetime when it was minted before ``now``
        (a cached token); otherwise it is taken as minted at ``now``.
        """
        if lifetime_seconds is None:
            self._token = TokenTiming(minted_at=now, expires_at=expires_at)
        else:
            self._token = TokenTiming.from_lifetime(
                expires_at=expires_at, lifetime_seconds=lifetime_seconds
            )
        self._token_due_at = self._token.refresh_due_at
        if self._open:
            self._queue(m.UpdateToken(token))

    # ----------------------------------------------------------------------------- time

    def tick(self, now: float) -> list[Event]:
        """Emit what is due at ``now``: token refresh, reconnect, REST checks, run-log fetches."""
        events: list[Event] = []
        if self._token is not None and self._token_due_at is not None and now >= self._token_due_at:
            events.append(TokenRefreshDue())
            # Asked again if no token_refreshed follows (a failed mint), until one does.
            self._token_due_at = now + self._token.retry_interval_seconds
        if not self._open and self._reconnect_at is not None and now >= self._reconnect_at:
            events.append(ReconnectDue(self._failures + 1))
            # The driver answers with connection_opened or connection_failed.
            self._reconnect_at = None
            self._connecting = True
        while (check_at := self._earliest_check()) is not None and check_at <= now:
            job = self._running[heapq.heappop(self._checks)[1]]
            job.queued_at = None
            # Re-asked after the silence limit when the driver never answers.
            self._set_check(job, now + self.config.silence_limit_seconds)
            if job.phase is _Phase.FOLLOWING:
                events.append(ReconcileDue(job.job_id))
            elif job.run_log_url is not None:
                events.append(RunLogFetchDue(job.job_id, job.run_log_url))
        return events

    # ----------------------------------------------------------------------------- socket input

    def receive_text(self, text: str | bytes, now: float) -> list[Event]:
        """Handle one text frame from the server; bad input becomes an event, never an error."""
        try:
            message = m.decode_server_message(text)
        except (RemoteProtocolError, ValueError, RecursionError) as exc:
            return [MessageRejected(str(exc) or type(exc).__name__)]
        if self._open and not isinstance(message, m.ErrorReported):
            self._proven = True
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
        if job is None or job.phase is _Phase.FINISHED:
            state = "finished" if job else "not followed"
            reason = f"{type(message).__name__} for job {message.compute_job_id!r} ({state})"
            return [MessageIgnored(reason, message.compute_job_id)]
        if job.phase is _Phase.FOLLOWING:
            # Pushes the check on: no heap operation (see _set_check).
            self._set_check(job, now + self.config.silence_limit_seconds)
        match message:
            case m.JobStatusReport():
                return self._apply_status(job, _StatusFields.from_report(message), now)
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
        handler = job.app_messages if job is not None and job.phase is _Phase.FOLLOWING else None
        answered = AppMessageAnswered(
            message.compute_job_id, message.app_message_id, message.app_message_type
        )
        if handler is None:
            self._queue(default_answer(message))
            return [answered]
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
            targets = [job for job in self._unfinished() if job.phase is _Phase.FOLLOWING]
        else:
            job = self._jobs.get(message.compute_job_id)
            targets = [job] if job is not None and job.phase is _Phase.FOLLOWING else []
        if not targets:
            reason = f"COMPUTE_JOB_NOT_FOUND for job {message.compute_job_id!r} (not followed)"
            return [MessageIgnored(reason, message.compute_job_id)]
        events: list[Event] = []
        for job in targets:
            # The server lost track of it (finished long ago, or never known): ask REST (§B9 #13).
            self._set_check(job, now + self.config.silence_limit_seconds)
            events.append(ReconcileDue(job.job_id))
        return events

    # ----------------------------------------------------------------------------- REST input

    def job_document_received(
        self, job_id: str, document: Mapping[str, Any], now: float
    ) -> list[Event]:
        """Feed the ``GET /api/compute-jobs/{id}`` document asked for by ``ReconcileDue``."""
        job = self._jobs.get(job_id)
        if job is None or job.phase is _Phase.FINISHED:
            return []
        if job.phase is _Phase.FOLLOWING:
            self._schedule_check(job, now)
        try:
            fields = _StatusFields.from_document(document)
        except RemoteProtocolError as exc:
            return [MessageRejected(f"job {job_id!r}: {exc}")]
        return self._apply_status(job, fields, now)

    def job_gone(self, job_id: str, now: float) -> list[Event]:
        """The REST check answered 404: the job no longer exists (§A8, §B9 #13)."""
        job = self._jobs.get(job_id)
        if job is None or job.phase is not _Phase.FOLLOWING:
            # Finished, or its terminal status is known and the run-log fetch will finish it.
            return []
        job.status = JobStatus.DELETED.value
        job.detail = "the job no longer exists on the Insight server (HTTP 404)"
        changed = StatusChanged(
            job_id, job.status, job.model_status, job.run_log.execution_attempts
        )
        # The run log went with the job: it is not known complete.
        return [changed, *self._finish(job)]

    def reconcile_failed(self, job_id: str, now: float, reason: str | None = None) -> None:
        """The REST check failed (network, 5xx after retries): try again on the check schedule."""
        del reason  # The driver logs it; the schedule does not depend on why.
        job = self._jobs.get(job_id)
        if job is not None and job.phase is _Phase.FOLLOWING:
            self._schedule_check(job, now)

    def run_log_fetched(self, job_id: str, text: str, now: float) -> list[Event]:
        """Feed the final REST run log asked for by ``RunLogFetchDue``; the job then finishes."""
        job = self._jobs.get(job_id)
        if job is None or job.phase is not _Phase.FETCHING_RUN_LOG:
            return []
        filled = job.run_log.fill_from_text(text)
        # Complete unless some line was given up (now, or earlier while streaming).
        return [*filled, *self._finish(job, run_log_complete=not job.run_log.lines_lost)]

    def run_log_unavailable(
        self, job_id: str, now: float, reason: str | None = None
    ) -> list[Event]:
        """The final run log could not be fetched: finish with the lines the socket brought."""
        del reason  # The driver logs it; buffered lines and gaps are reported either way.
        job = self._jobs.get(job_id)
        if job is None or job.phase is not _Phase.FETCHING_RUN_LOG:
            return []
        return self._finish(job)

    # ----------------------------------------------------------------------------- internals

    def _unfinished(self) -> list[_Job]:
        return list(self._running.values())

    def _set_check(self, job: _Job, at: float) -> None:
        """Set the job's next REST check; push a heap entry only when it moves *earlier*.

        Each running job has at most one live heap entry (its time in ``job.queued_at``); a
        later deadline (every message pushes it on) only updates the field, and the entry is
        moved when it reaches the top (:meth:`_earliest_check`). So a message costs no heap
        operation, and ``tick``/``next_deadline`` cost O(log jobs), not O(jobs).
        """
        job.next_check_at = at
        if job.queued_at is None or at < job.queued_at:
            heapq.heappush(self._checks, (at, job.job_id))
            job.queued_at = at

    def _earliest_check(self) -> float | None:
        """The earliest REST check of a running job, after dropping or moving stale entries."""
        checks = self._checks
        while checks:
            at, job_id = checks[0]
            job = self._running.get(job_id)
            if job is None or job.queued_at != at:
                heapq.heappop(checks)  # finished, unfollowed, or superseded by an earlier entry
            elif job.next_check_at > at:
                heapq.heapreplace(checks, (job.next_check_at, job_id))  # pushed on meanwhile
                job.queued_at = job.next_check_at
            else:
                return at
        return None

    def _queue(self, message: m.ClientMessage) -> None:
        self._outgoing.append(m.encode_client_message(message))

    @staticmethod
    def _subscriptions_for(jobs: list[_Job]) -> tuple[m.Subscription, ...]:
        return tuple(
            m.Subscription(job.job_id, job.run_log.execution_attempts, job.run_log.last_server_line)
            for job in jobs
        )

    def _backoff(self, failures: int) -> float:
        config = self.config
        delay = min(
            config.reconnect_max_delay_seconds,
            config.reconnect_initial_delay_seconds * config.reconnect_multiplier**failures,
        )
        if self._jitter_source is None or config.jitter_fraction == 0:
            return delay
        draw = min(1.0, max(0.0, self._jitter_source()))
        return delay * (1.0 + config.jitter_fraction * (2.0 * draw - 1.0))

    def _schedule_check(self, job: _Job, now: float) -> None:
        """Plan the next REST check: the silence limit, or the backoff while the socket is down."""
        interval = self.config.silence_limit_seconds
        if not self._open:
            interval = min(interval, self._backoff(job.down_checks))
            job.down_checks += 1
        self._set_check(job, now + interval)

    def _apply_status(self, job: _Job, fields: _StatusFields, now: float) -> list[Event]:
        if job.phase is not _Phase.FOLLOWING:
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
            events.extend(self._job_ended(job, now))
        return events

    def _after_terminal(self, job: _Job, fields: _StatusFields) -> list[Event]:
        """A status after the terminal one: fill in missing fields, never change the end."""
        if fields.status != job.status:
            reason = f"status {fields.status} for job {job.job_id!r} after terminal {job.status}"
            return [MessageIgnored(reason, job.job_id)]
        job.model_status = job.model_status or fields.model_status
        job.result_url = job.result_url or fields.result_url
        job.run_log_url = job.run_log_url or fields.run_log_url
        return []

    def _job_ended(self, job: _Job, now: float) -> list[Event]:
        job.phase = _Phase.FETCHING_RUN_LOG
        if job.run_log_url is None or self._socket_brought_whole_log(job):
            # Never ran (e.g. cancelled while queued): there is no run log to fetch. Or the
            # socket brought every line, as RUNLOG_COMPLETED counts them: nothing to fill.
            return self._finish(job, run_log_complete=self._socket_brought_whole_log(job))
        self._set_check(job, now + self.config.silence_limit_seconds)
        return [RunLogFetchDue(job.job_id, job.run_log_url)]

    def _socket_brought_whole_log(self, job: _Job) -> bool:
        """True when ``RUNLOG_COMPLETED``'s total matches exactly what was forwarded."""
        return job.total_lines is not None and job.run_log.covers(job.total_lines)

    def _finish_if_fetch_unneeded(self, job: _Job) -> list[Event]:
        """After the terminal status, while the fetch is outstanding: end as soon as the
        socket completed the log (the fetch's answer is then ignored)."""
        if job.phase is _Phase.FETCHING_RUN_LOG and self._socket_brought_whole_log(job):
            return self._finish(job, run_log_complete=True)
        return []

    def _finish(self, job: _Job, *, run_log_complete: bool = False) -> list[Event]:
        events: list[Event] = list(job.run_log.flush())
        job.phase = _Phase.FINISHED
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
