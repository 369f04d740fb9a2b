"""The per-job half of the core: what is known of each followed job, and its REST check schedule.

Each :class:`FollowedJob` moves through :class:`Phase` ``FOLLOWING`` -> ``FETCHING_RUN_LOG`` (a
terminal status was seen, the REST run log is asked for) -> ``FINISHED``, by one table
(:data:`PHASE_TRANSITIONS`); a move the table does not hold raises
:class:`~airflow_insight.exceptions.LocalProtocolError`. :class:`CheckSchedule`
keeps the next REST check of every running job in a lazily maintained heap, so a message costs no
heap operation and the next deadline costs O(log jobs).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
from collections.abc import Mapping
from typing import Any

from airflow_insight.exceptions import LocalProtocolError, RemoteProtocolError
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.outcome import JobOutcome, document_text
from airflow_insight.protocol.runlog import RunLog

__all__ = ["PHASE_TRANSITIONS", "CheckSchedule", "FollowedJob", "Phase", "StatusFields"]


class Phase(enum.Enum):
    """Where a followed job is."""

    FOLLOWING = "following"
    #: A terminal status was seen; waiting for the REST run log.
    FETCHING_RUN_LOG = "fetching_run_log"
    FINISHED = "finished"


#: Phase -> the phases it may move to; a finished job never moves again.
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.FOLLOWING: frozenset({Phase.FETCHING_RUN_LOG, Phase.FINISHED}),
    Phase.FETCHING_RUN_LOG: frozenset({Phase.FINISHED}),
    Phase.FINISHED: frozenset(),
}


@dataclasses.dataclass(slots=True)
class FollowedJob:
    """What the core knows of one job."""

    job_id: str
    run_log: RunLog
    next_check_at: float
    status: str | None = None
    model_status: str | None = None
    result_url: str | None = None
    run_log_url: str | None = None
    detail: str | None = None
    phase: Phase = Phase.FOLLOWING
    #: REST checks made while the socket was down, for the check backoff.
    down_checks: int = 0
    #: ``totalLines`` of the last ``RUNLOG_COMPLETED`` for the current attempt, if any.
    total_lines: int | None = None
    #: The time of this job's live entry in the check heap (None: it has none).
    queued_at: float | None = None
    #: Answers this job's ``APP_MESSAGE``s (None: the default answer).
    app_messages: AppMessageHandler | None = None

    def move(self, phase: Phase) -> None:
        """Move to ``phase`` by :data:`PHASE_TRANSITIONS` (anything else is a core bug)."""
        if phase not in PHASE_TRANSITIONS[self.phase]:
            raise LocalProtocolError(
                f"compute job {self.job_id!r} cannot move from {self.phase.value} to {phase.value}"
            )
        self.phase = phase

    def subscription(self) -> m.Subscription:
        """This job's entry in a ``SUBSCRIBE``."""
        return m.Subscription(
            self.job_id, self.run_log.execution_attempts, self.run_log.last_server_line
        )

    def socket_brought_whole_log(self) -> bool:
        """True when ``RUNLOG_COMPLETED``'s total matches exactly what was forwarded."""
        return self.total_lines is not None and self.run_log.covers(self.total_lines)


@dataclasses.dataclass(frozen=True, slots=True)
class StatusFields:
    """The status fields shared by status messages and REST job documents (§B3.4, §B4.7.1)."""

    status: str
    model_status: str | None
    execution_attempts: int | None
    result_url: str | None
    run_log_url: str | None
    #: True for ``CURRENT_JOB_STATUS``, the answer to a ``SUBSCRIBE`` (its replay follows).
    current: bool = False

    @classmethod
    def from_report(cls, report: m.JobStatusReport) -> StatusFields:
        """Read a status message."""
        return cls(
            report.status,
            report.model_status,
            report.execution_attempts,
            report.result_url,
            report.run_log_url,
            report.current,
        )

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> StatusFields:
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


class CheckSchedule:
    """The next REST check of each running job.

    Each running job has at most one live heap entry (its time in ``job.queued_at``); a later
    deadline (every message pushes it on) only updates the field, and the entry is moved when it
    reaches the top (:meth:`earliest`).
    """

    def __init__(self, running: Mapping[str, FollowedJob]) -> None:
        self._running = running
        self._heap: list[tuple[float, str]] = []

    def set(self, job: FollowedJob, at: float) -> None:
        """Set the job's next check; push a heap entry only when it moves *earlier*."""
        job.next_check_at = at
        if job.queued_at is None or at < job.queued_at:
            heapq.heappush(self._heap, (at, job.job_id))
            job.queued_at = at

    def earliest(self) -> float | None:
        """The earliest check of a running job, after dropping or moving stale entries."""
        heap = self._heap
        while heap:
            at, job_id = heap[0]
            job = self._running.get(job_id)
            if job is None or job.queued_at != at:
                heapq.heappop(heap)  # finished, unfollowed, or superseded by an earlier entry
            elif job.next_check_at > at:
                heapq.heapreplace(heap, (job.next_check_at, job_id))  # pushed on meanwhile
                job.queued_at = job.next_check_at
            else:
                return at
        return None

    def pop_due(self, now: float) -> FollowedJob | None:
        """The next job whose check is due at ``now`` (its entry removed), or None."""
        at = self.earliest()
        if at is None or at > now:
            return None
        job = self._running[heapq.heappop(self._heap)[1]]
        job.queued_at = None
        return job
