"""Cancel one compute job and wait (bounded) for its end: the one cancel decision.

A small flow the drivers step, as the other core flows: each input returns the next step, a
:class:`ReadStatus` (after a delay), a :class:`SendDelete`, or the :class:`CancelResult` that
ends it. The decision: read the job first; a job already ended (or gone) has nothing to cancel,
so no ``DELETE`` reaches a finished job; else ``DELETE`` it and read it again until it is
terminal or ``wait_seconds`` passed. A status that cannot be read before the ``DELETE`` does
not stop the cancel (the caller has decided to cancel; the read only spares a finished job).
The flow reads no clock: the driver passes ``now`` (monotonic seconds). Why one flow, and the
waits each adapter uses: ``docs/design.md#one-cancel-flow``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

from airflow_insight.protocol.statuses import is_terminal

#: How often the wait after the ``DELETE`` reads the job again.
CANCEL_POLL_SECONDS = 0.2


@dataclasses.dataclass(frozen=True, slots=True)
class ReadStatus:
    """Read the job's status over REST after ``delay_seconds``; answer with
    :meth:`CancelFlow.status_read` (None: the server has no such job) or
    :meth:`CancelFlow.status_unreadable`."""

    delay_seconds: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class SendDelete:
    """Send ``DELETE`` for the job; answer with :meth:`CancelFlow.deleted` or
    :meth:`CancelFlow.delete_failed`."""


class CancelEnd(enum.StrEnum):
    """How a cancel ended."""

    #: The job had ended before: nothing was cancelled.
    ALREADY_ENDED = "already ended"
    #: The server has no such job (any more).
    GONE = "gone"
    #: The ``DELETE`` was taken and the job reached a terminal status within the wait.
    ENDED = "ended"
    #: The ``DELETE`` was taken; the job was not seen terminal within the wait.
    PENDING = "pending"
    #: The ``DELETE`` was taken and no wait was asked for.
    ASKED = "asked"
    #: The ``DELETE`` failed: the job may still run.
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class CancelResult:
    """The end of a cancel: how it ended, the last status read, the error that stopped it."""

    job_id: str
    end: CancelEnd
    status: str | None = None
    error: str = ""

    @property
    def cancelled(self) -> bool:
        """True when the server took the ``DELETE``."""
        return self.end in (CancelEnd.ENDED, CancelEnd.PENDING, CancelEnd.ASKED)

    @property
    def log_level(self) -> int:
        """ERROR when the job may still run against the caller's wish, else WARNING."""
        return logging.ERROR if self.end is CancelEnd.FAILED else logging.WARNING

    def describe(self) -> str:
        """One log line."""
        job = f"Insight compute job {self.job_id}"
        match self.end:
            case CancelEnd.ALREADY_ENDED:
                return f"{job} already ended ({self.status}): nothing to cancel"
            case CancelEnd.GONE:
                return f"{job} is gone"
            case CancelEnd.ENDED:
                return f"{job} is now {self.status}"
            case CancelEnd.PENDING:
                seen = f" (last seen {self.status})" if self.status else ""
                return f"{job} was cancelled but did not reach CANCELLED in time{seen}"
            case CancelEnd.ASKED:
                return f"{job} cancelled"
        return f"Could not cancel {job}: {self.error}"


Step = ReadStatus | SendDelete | CancelResult


class CancelFlow:
    """One job's cancel: ``start``, then answer each step until a :class:`CancelResult`.

    ``wait_seconds`` bounds the wait for a terminal status after the ``DELETE`` (0: no wait,
    the ``DELETE`` taken is the end).
    """

    def __init__(
        self, job_id: str, wait_seconds: float, poll_seconds: float = CANCEL_POLL_SECONDS
    ) -> None:
        self.job_id = job_id
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds
        self._deadline: float | None = None  # set by the DELETE: the wait has begun
        self._status: str | None = None

    def start(self) -> Step:
        """The first step: read the job, so a finished one is left alone."""
        return ReadStatus()

    def status_read(self, status: str | None, now: float) -> Step:
        """The job's status (None: the server has no such job)."""
        if status is None:
            return self._end(CancelEnd.GONE)
        self._status = status
        if self._deadline is None:
            return self._end(CancelEnd.ALREADY_ENDED) if is_terminal(status) else SendDelete()
        if is_terminal(status):
            return self._end(CancelEnd.ENDED)
        if now >= self._deadline:
            return self._end(CancelEnd.PENDING)
        return ReadStatus(self._poll_seconds)

    def status_unreadable(self, error: str) -> Step:
        """Reading the status failed: cancel anyway before the ``DELETE``, stop waiting after."""
        if self._deadline is None:
            return SendDelete()
        return self._end(CancelEnd.PENDING, error)

    def deleted(self, now: float) -> Step:
        """The server took the ``DELETE``: wait for the end, if there is time to."""
        self._deadline = now + self._wait_seconds
        if self._wait_seconds <= 0:
            return self._end(CancelEnd.ASKED)
        return ReadStatus()

    def delete_failed(self, error: str) -> CancelResult:
        """The ``DELETE`` failed (an error, or no answer in time)."""
        return self._end(CancelEnd.FAILED, error)

    def _end(self, end: CancelEnd, error: str = "") -> CancelResult:
        return CancelResult(self.job_id, end, self._status, error)
