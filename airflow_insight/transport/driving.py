"""What the two WebSocket drivers share that does no I/O of its own: the sink, the inbox items,
the end bookkeeping, the wait rule and which REST function performs which call of the core.

:mod:`.sync_driver` and :mod:`.async_driver` mirror each other method for method; the parts of
them that are not I/O live here once, so the twins cannot drift. An inbox holds one of
:data:`InboxItem`: what a reader read (:class:`Frame`, :class:`Answered`, :class:`Closed`), the
outputs of ``follow``/``unfollow`` (:class:`Fed`) and a finished call (:class:`CallAnswer`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from airflow_insight.exceptions import InsightError, LocalProtocolError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.follower import Follower
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.transport.rest import InsightRestClient

#: Every event the core emits, in order: run-log batches (each line exactly once) for the task
#: log, the rest for the adapter to log (the drivers never log them).
DriverEvent = ev.Event
EventSink = Callable[[DriverEvent], None]
#: A core input, given the time.
CoreInput = Callable[[float], list[ev.Output]]

#: The calls performed over REST (``ReconnectDue`` is the socket's).
RestCall = ev.TokenRefreshDue | ev.ReconcileDue | ev.RunLogFetchDue

#: Longest single wait when the core has nothing scheduled (it always has while following).
MAX_WAIT_SECONDS = 30.0


def receive_timeout(now: float, *deadlines: float | None, floor_seconds: float = 0.0) -> float:
    """Seconds to wait for the next frame: until the earliest deadline given (None: none), at
    least ``floor_seconds`` and at most :data:`MAX_WAIT_SECONDS`."""
    known = [deadline for deadline in deadlines if deadline is not None]
    wait = min(known) - now if known else MAX_WAIT_SECONDS
    return min(MAX_WAIT_SECONDS, max(floor_seconds, wait))


def rest_call(rest: InsightRestClient, call: RestCall) -> Callable[[], Any]:
    """The blocking REST function that performs ``call`` (not ``ReconnectDue``: a socket)."""
    match call:
        case ev.TokenRefreshDue():
            return functools.partial(rest.token, fresh=call.fresh)
        case ev.ReconcileDue():
            return functools.partial(rest.get_job, call.job_id)
        case ev.RunLogFetchDue():
            return functools.partial(rest.get_run_log, call.run_log_url, compute_job_id=call.job_id)
    raise LocalProtocolError(f"{type(call).__name__} is not a REST call")


def split_outputs(outputs: Iterable[ev.Output]) -> tuple[list[str], list[ev.Event]]:
    """The core's one channel, parted: the frames to send now and the events, each in order."""
    texts: list[str] = []
    events: list[ev.Event] = []
    for output in outputs:
        if isinstance(output, ev.SendText):
            texts.append(output.text)
        else:
            events.append(output)
    return texts, events


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """A text frame a reader read from ``socket``, for the core."""

    socket: object
    text: str | bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Answered:
    """The events of a frame the reader handed to the core at once (it needed a reply)."""

    socket: object
    events: list[ev.Event]


@dataclasses.dataclass(frozen=True, slots=True)
class Closed:
    """``socket`` stopped delivering frames."""

    socket: object


@dataclasses.dataclass(frozen=True, slots=True)
class Fed:
    """What ``follow``/``unfollow`` got from the core, for the loop to send and handle."""

    outputs: list[ev.Output]


@dataclasses.dataclass(frozen=True, slots=True)
class CallAnswer:
    """A call the core asked for, performed: its result, or the error it failed with."""

    call_id: int
    result: Any = None
    error: InsightError | None = None

    def core_input(self, follower: Follower) -> CoreInput:
        """The core input that hands this answer back."""
        if self.error is not None:
            return functools.partial(follower.call_failed, self.call_id, self.error)
        return functools.partial(follower.call_succeeded, self.call_id, self.result)


InboxItem = Frame | Answered | Closed | Fed | CallAnswer


def perform(call_id: int, function: Callable[[], Any]) -> CallAnswer:
    """Run a call's blocking ``function``; its answer (an :class:`InsightError` is one)."""
    try:
        return CallAnswer(call_id, function())
    except InsightError as exc:
        return CallAnswer(call_id, error=exc)


class Ends:
    """The jobs a driver follows, how each ended, and why the whole session did (if it did).

    A job counts as followed from ``follow`` to ``unfollow``, its end kept until then: a waiter
    never depends on when the core drops a job, only on the end the driver recorded.
    """

    __slots__ = ("_ends", "_followed", "session_error")

    def __init__(self) -> None:
        self._followed: set[str] = set()
        self._ends: dict[str, JobOutcome | InsightError] = {}
        #: Set when the session failed (no token): ``open()`` raises it.
        self.session_error: InsightError | None = None

    def follow(self, job_id: str) -> None:
        """``job_id`` is followed afresh: an earlier end of it is forgotten."""
        self._followed.add(job_id)
        self._ends.pop(job_id, None)

    def unfollow(self, job_id: str) -> None:
        """Nobody waits for ``job_id`` any more."""
        self._followed.discard(job_id)
        self._ends.pop(job_id, None)

    def record(self, event: ev.Event) -> bool:
        """Keep the end ``event`` says (True), or nothing when it says none (False)."""
        match event:
            case ev.JobFinished():
                self._ends[event.job_id] = event.outcome
            case ev.FollowFailed(job_id=None):
                self.session_error = event.error
            case ev.FollowFailed(job_id=str(job_id)):
                self._ends[job_id] = event.error
            case _:
                return False
        return True

    def fail_all(self, error: InsightError) -> None:
        """End every followed job not ended yet with ``error`` (a driver bug)."""
        self.session_error = error
        for job_id in self._followed:
            self._ends.setdefault(job_id, error)

    def ended(self, job_id: str) -> bool:
        """True once ``job_id`` ended; raises :func:`not_followed` for a job not followed."""
        if job_id in self._ends:
            return True
        if job_id not in self._followed:
            raise not_followed(job_id)
        return False

    def outcome(self, job_id: str) -> JobOutcome:
        """The outcome of an ended job; raises the error it ended with."""
        end = self._ends[job_id]
        if isinstance(end, InsightError):
            raise end
        return end


class UrgentLane(Protocol):
    """The inbox lane the loop takes first (:class:`.SyncInbox`, :class:`.AsyncInbox`)."""

    def put_urgent(self, item: InboxItem) -> None:
        """Queue ``item`` ahead of every frame."""


class Following:
    """``follow`` and ``unfollow``, the same in both drivers: feed the core at once and park
    its outputs as one :class:`Fed` item for the loop (which sends and handles them)."""

    follower: Follower
    _ends: Ends
    _inbox: UrgentLane
    _clock: Callable[[], float]
    #: Held around each core call made outside the loop (a reader thread may feed the core too).
    _core: contextlib.AbstractContextManager[Any]

    def follow(
        self,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        app_messages: AppMessageHandler | None = None,
    ) -> None:
        """Follow an existing job (re-attach), resuming after ``last_run_log_line``.

        ``app_messages`` answers the job's solver callbacks (see :mod:`.appmessages`)."""
        self._ends.follow(job_id)
        with self._core:
            outputs = self.follower.follow(
                job_id,
                execution_attempts=execution_attempts,
                last_run_log_line=last_run_log_line,
                now=self._clock(),
                app_messages=app_messages,
            )
        self._inbox.put_urgent(Fed(outputs))

    def unfollow(self, job_id: str) -> None:
        """Stop following a job (it keeps running on the server)."""
        with self._core:
            outputs = self.follower.unfollow(job_id)
        self._ends.unfollow(job_id)
        self._inbox.put_urgent(Fed(outputs))


def not_followed(job_id: str) -> LocalProtocolError:
    """The error of ``wait()`` for a job the driver does not follow (both drivers)."""
    return LocalProtocolError(f"compute job {job_id!r} is not followed by this driver")
