"""Events the protocol core hands to its driver: frozen values named as facts.

Every event has a ``log_level`` (a :mod:`logging` level) and a ``describe()`` text, so whoever
logs them (the adapter, never the driver) writes the same line for the same event with
``log.log(event.log_level, event.describe())``. Events that ask the driver to do something end in
``Due`` (see :data:`Call`); each carries a ``call_id``, and the driver answers it with exactly one
:meth:`~airflow_insight.protocol.follower.Follower.call_succeeded` or
:meth:`~airflow_insight.protocol.follower.Follower.call_failed`.

An event about one job names it (``job_id``); one about the socket or the session says whether
every job followed on it must hear of it (``for_every_job``): :func:`audience` is the one rule a
driver or a hub routes by, never the log level.

No event shows a token or a secret: :class:`ReconnectDue` carries the token to open the socket
with, hidden from ``repr`` and comparison, and no ``describe()`` names it.

The core's one output channel: each of its inputs returns a list of :data:`Output`, events and
:class:`SendText` frames in the order they arose. A frame goes to the socket at once (it is not
an event: nothing logs it, and ``UPDATE_TOKEN`` carries the token); the events go to the caller.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
from typing import ClassVar, Protocol

from airflow_insight.exceptions import InsightError
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.tokens import Token


@dataclasses.dataclass(frozen=True, slots=True)
class StatusChanged:
    """A followed job reported a status different from the last one seen."""

    log_level: ClassVar[int] = logging.INFO

    job_id: str
    status: str
    model_status: str | None
    execution_attempts: int

    def describe(self) -> str:
        """One log line."""
        model = f", model status {self.model_status}" if self.model_status is not None else ""
        return (
            f"Insight compute job {self.job_id}: status {self.status}{model} "
            f"(execution attempt {self.execution_attempts})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class JobRequeued:
    """``executionAttempts`` grew: the server requeued the job and a new attempt starts (§A6)."""

    log_level: ClassVar[int] = logging.WARNING

    job_id: str
    execution_attempts: int

    def describe(self) -> str:
        """The marker line written into the task log."""
        return (
            f"----- Insight requeued compute job {self.job_id}: execution attempt "
            f"{self.execution_attempts} starts; the earlier attempt's log stays above -----"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RunLogLines:
    """Run-log lines to forward, in order, each exactly once.

    ``first_line`` is the 0-based position of ``lines[0]`` in the job's whole run log.
    """

    # DEBUG: the lines themselves go to the task log; a summary per batch would interleave.
    log_level: ClassVar[int] = logging.DEBUG

    job_id: str
    execution_attempts: int
    first_line: int
    lines: tuple[str, ...]

    @property
    def last_line(self) -> int:
        """The position of the last line of the batch."""
        return self.first_line + len(self.lines) - 1

    def describe(self) -> str:
        """A summary; drivers log the lines themselves, one log record per line."""
        return (
            f"Insight compute job {self.job_id}: run-log lines {self.first_line}-{self.last_line}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RunLogGap:
    """Run-log lines that will never be forwarded (the final run log could not fill them)."""

    log_level: ClassVar[int] = logging.WARNING

    job_id: str
    first_line: int
    last_line: int

    def describe(self) -> str:
        """One log line."""
        return (
            f"Insight compute job {self.job_id}: run-log lines {self.first_line}-{self.last_line} "
            "were lost and are not in this log (see the job's run log in Insight)"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RunLogFetchDue:
    """A REST call: the job is finished, GET ``run_log_url`` (the text is the answer).

    ``run_log_url`` is the raw server-relative URL from the message; resolve it against the
    configured base URL (§A1).
    """

    log_level: ClassVar[int] = logging.DEBUG

    job_id: str
    run_log_url: str
    call_id: int = dataclasses.field(default=0, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"Insight compute job {self.job_id}: fetching the final run log"


@dataclasses.dataclass(frozen=True, slots=True)
class JobFinished:
    """The job reached its end and its run log was forwarded; nothing more comes for it."""

    log_level: ClassVar[int] = logging.INFO

    outcome: JobOutcome

    @property
    def job_id(self) -> str:
        """The compute job id."""
        return self.outcome.compute_job_id

    def describe(self) -> str:
        """One log line."""
        o = self.outcome
        model = "null" if o.model_status is None else o.model_status
        return f"Insight compute job {o.compute_job_id} ended: {o.status}, model status {model}"


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRefreshDue:
    """A REST call: mint a token (the :class:`~.tokens.Token` is the answer).

    ``fresh`` False allows the REST client's cached token when it is not due for refresh (the
    first token, a reconnect); True asks for a newly minted one (refresh due, or after a 401).
    """

    log_level: ClassVar[int] = logging.DEBUG

    call_id: int = dataclasses.field(default=0, compare=False)
    fresh: bool = True

    def describe(self) -> str:
        """One log line."""
        return "Insight bearer token refresh is due"


@dataclasses.dataclass(frozen=True, slots=True)
class ReconnectDue:
    """An I/O call: open a new WebSocket with ``token`` (the ``connection-id`` is the answer)."""

    #: 1 for the first attempt after the socket went away, growing with each failure.
    attempt: int
    call_id: int = dataclasses.field(default=0, compare=False)
    token: Token | None = dataclasses.field(default=None, repr=False, compare=False)
    #: False for the session's first socket: nothing was connected before, so nothing "re"-.
    reconnect: bool = dataclasses.field(default=True, compare=False)
    #: True while the server is known not to answer: the outage lines say it, not each attempt.
    quiet: bool = dataclasses.field(default=False, compare=False)

    @property
    def log_level(self) -> int:
        """INFO, or DEBUG during an outage (see :class:`ServerUnanswered`)."""
        return logging.DEBUG if self.quiet else logging.INFO

    @property
    def for_every_job(self) -> bool:
        """Every job's log says the socket is being opened, unless an outage line says it."""
        return not self.quiet

    def describe(self) -> str:
        """One log line."""
        if not self.reconnect:
            return "Connecting to the Insight progress WebSocket"
        return f"Reconnecting the Insight progress WebSocket (attempt {self.attempt})"


@dataclasses.dataclass(frozen=True, slots=True)
class ReconcileDue:
    """A REST call: GET the job (its document is the answer)."""

    log_level: ClassVar[int] = logging.DEBUG

    job_id: str
    call_id: int = dataclasses.field(default=0, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"Insight compute job {self.job_id}: checking its status over REST"


@dataclasses.dataclass(frozen=True, slots=True)
class AppMessageAnswered:
    """A solver callback was answered the moment it arrived (§A10): by the job's
    :class:`~.appmessages.AppMessageHandler` (``handled``), or, unexpected, with the default
    ``interruptSolve: false``."""

    job_id: str
    app_message_id: str
    app_message_type: str | None
    #: True when the job's handler gave the answer (callbacks were asked for).
    handled: bool = False
    #: True when the answer asked the solver to stop (only a handler ever does).
    interrupt_solve: bool = False

    @property
    def log_level(self) -> int:
        """DEBUG when callbacks were asked for; WARNING for one nobody expected."""
        return logging.DEBUG if self.handled else logging.WARNING

    def describe(self) -> str:
        """One log line."""
        if self.handled:
            stop = ", interrupting the solve" if self.interrupt_solve else ""
            return (
                f"Insight compute job {self.job_id}: answered solver callback "
                f"{self.app_message_type} ({self.app_message_id}){stop}"
            )
        return (
            f"Insight compute job {self.job_id}: answered unexpected solver callback "
            f"{self.app_message_type} ({self.app_message_id}) with interruptSolve=false"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PingAnswered:
    """A JSON ``PING`` arrived and a JSON ``PONG`` with the same payload was queued (§A2)."""

    log_level: ClassVar[int] = logging.DEBUG

    def describe(self) -> str:
        """One log line."""
        return "Answered a JSON PING from the Insight server"


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The server sent an ``ERROR`` the core has no specific reaction to (§B9 #14)."""

    log_level: ClassVar[int] = logging.WARNING

    job_id: str | None
    error_type: str | None
    error_message: str | None

    @property
    def for_every_job(self) -> bool:
        """An error about no job in particular concerns them all."""
        return self.job_id is None

    def describe(self) -> str:
        """One log line."""
        job = f" about compute job {self.job_id}" if self.job_id else ""
        return f"Insight server reported {self.error_type}{job}: {self.error_message}"


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRejected:
    """A received text could not be used at all (malformed JSON, missing fields); it was dropped."""

    log_level: ClassVar[int] = logging.WARNING
    #: Nobody can tell which job a frame that could not be read was about.
    for_every_job: ClassVar[bool] = True

    reason: str

    def describe(self) -> str:
        """One log line."""
        return f"Dropped an unusable Insight message: {self.reason}"


@dataclasses.dataclass(frozen=True, slots=True)
class MessageIgnored:
    """A well-formed message that needs nothing (unknown type, unknown or finished job)."""

    log_level: ClassVar[int] = logging.DEBUG

    reason: str
    job_id: str | None = None

    def describe(self) -> str:
        """One log line."""
        return f"Ignored an Insight message: {self.reason}"


@dataclasses.dataclass(frozen=True, slots=True)
class CallFailed:
    """A call the core asked for failed in a way it survives; it is asked again later."""

    #: What was tried, as a sentence start ("Checking compute job x over REST").
    what: str
    error: str
    job_id: str | None = None
    #: WARNING; DEBUG for a failure without an answer, which the outage lines report instead.
    log_level: int = dataclasses.field(default=logging.WARNING, compare=False)
    #: A failed call of the socket or the token (no ``job_id``) that every job's log must show.
    for_every_job: bool = dataclasses.field(default=False, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.what} failed: {self.error}"


@dataclasses.dataclass(frozen=True, slots=True)
class FollowFailed:
    """Following a job ended in an error (``job_id`` None: every job): a REST error a retry
    cannot fix, or no answer from the server for the unreachable limit. The last event of it."""

    log_level: ClassVar[int] = logging.ERROR

    job_id: str | None
    error: InsightError
    #: The server as the follower names it (URL and Airflow connection); for a failure of all.
    server: str = dataclasses.field(default="the Insight server", compare=False)

    @property
    def for_every_job(self) -> bool:
        """A failure of the session (no ``job_id``) ends every job."""
        return self.job_id is None

    def describe(self) -> str:
        """One log line (exception messages never carry secrets)."""
        if self.job_id is None:
            return f"Following Insight compute jobs on {self.server} failed: {self.error}"
        return f"Following Insight compute job {self.job_id} failed: {self.error}"


def _clock_time(epoch_seconds: float) -> str:
    """``epoch_seconds`` as a UTC time of day with its date, for a reader of the task log."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclasses.dataclass(frozen=True, slots=True)
class ServerUnanswered:
    """The server has not answered anything (socket or REST) for ``silent_seconds`` while jobs
    are followed: said once when a call first fails without an answer, then about every
    ``FollowerConfig.outage_report_interval_seconds`` while it lasts. The retries in between
    are logged at DEBUG only.

    ``gives_up_in_seconds`` is None when there is no unreachable limit. ``describe_at`` adds the
    wall-clock time of the end (the core reads no clock; the adapter that logs passes it).
    """

    log_level: ClassVar[int] = logging.WARNING
    #: An outage stalls every job followed.
    for_every_job: ClassVar[bool] = True

    server: str
    silent_seconds: float
    gives_up_in_seconds: float | None
    limit_seconds: float | None
    #: True for the first report of this outage.
    first: bool
    #: What the last failed attempt said (never a secret).
    error: str = ""

    def describe(self) -> str:
        """One log line without wall-clock time."""
        return self._text(None)

    def describe_at(self, epoch_seconds: float) -> str:
        """One log line that names the wall-clock time of the give-up (``epoch_seconds``: now)."""
        return self._text(epoch_seconds)

    def _text(self, now_epoch: float | None) -> str:
        if self.first:
            head = f"The Insight server {self.server} stopped answering"
            why = f" ({self.error})" if self.error else ""
            head += f"{why}; retrying quietly"
        else:
            head = (
                f"The Insight server {self.server} still does not answer"
                f" (silent for {self.silent_seconds:.0f} s)"
            )
        if self.gives_up_in_seconds is None or self.limit_seconds is None:
            return f"{head}; no unreachable limit is set, so the task waits for it"
        remaining = max(0.0, self.gives_up_in_seconds)
        when = "" if now_epoch is None else f" at {_clock_time(now_epoch + remaining)}"
        return (
            f"{head}. The task gives up{when}, in {remaining:.0f} s, unless the server answers"
            f" before (unreachable_limit_seconds={self.limit_seconds:g})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ServerAnswersAgain:
    """The server answered again after a :class:`ServerUnanswered` outage."""

    log_level: ClassVar[int] = logging.INFO
    for_every_job: ClassVar[bool] = True

    server: str
    silent_seconds: float

    def describe(self) -> str:
        """One log line."""
        return (
            f"The Insight server {self.server} answers again after {self.silent_seconds:.0f} s"
            " without an answer"
        )


class HandlerEvent(Protocol):
    """An event a job's ``APP_MESSAGE`` handler (a feature such as solver progress) emits after
    its answer; the core passes it on untouched.

    The core owns this shape so that it never imports a feature: ``job_id`` routes the event to
    the job's watch, ``logger_name`` is the logger the adapter writes it on.
    """

    @property
    def job_id(self) -> str:
        """The compute job whose callback produced the event."""
        ...

    @property
    def log_level(self) -> int:
        """A :mod:`logging` level."""
        ...

    @property
    def logger_name(self) -> str:
        """The logger to write the event on (the feature's own, apart from the core's)."""
        ...

    def describe(self) -> str:
        """One log line."""
        ...


Event = (
    StatusChanged
    | JobRequeued
    | RunLogLines
    | RunLogGap
    | RunLogFetchDue
    | JobFinished
    | TokenRefreshDue
    | ReconnectDue
    | ReconcileDue
    | AppMessageAnswered
    | PingAnswered
    | ErrorReceived
    | MessageRejected
    | MessageIgnored
    | CallFailed
    | FollowFailed
    | ServerUnanswered
    | ServerAnswersAgain
    | HandlerEvent
)


@dataclasses.dataclass(frozen=True, slots=True)
class SendText:
    """A frame the core wants on the socket now (a pong, an answer, ``SUBSCRIBE``,
    ``UPDATE_TOKEN``); its text is hidden from ``repr``: it may carry the token."""

    text: str = dataclasses.field(repr=False)


#: Everything a core input returns: events for the caller, frames for the socket.
Output = Event | SendText

#: The calls the core asks a driver to perform, each answered with one result or one error.
Call = TokenRefreshDue | ReconnectDue | ReconcileDue | RunLogFetchDue


class Audience(enum.Enum):
    """Who hears of an event that names no job."""

    #: Every job followed on the socket (a watch of each gets it).
    EVERY_JOB = "every job"


def audience(event: Event) -> str | Audience | None:
    """Who must hear of ``event``: its job's id, :attr:`Audience.EVERY_JOB`, or None (only the
    log of whoever drives the socket)."""
    job_id: str | None = getattr(event, "job_id", None)
    if job_id is not None:
        return job_id
    # Events about the socket or the session carry the flag; the rest concern no one job.
    return Audience.EVERY_JOB if getattr(event, "for_every_job", False) else None


#: What :class:`~airflow_insight.protocol.runlog.RunLog` produces.
RunLogEvent = RunLogLines | RunLogGap
