"""The events the progress handler emits after each answer, logged on their own logger.

Each fits the core's :class:`~airflow_insight.protocol.events.HandlerEvent`: a ``job_id`` (the
socket hub routes by it), a ``log_level``, a ``logger_name`` (:data:`PROGRESS_LOGGER`, apart from
the run log) and ``describe()``. A record that repeats what the last shown line said is logged
at DEBUG (:attr:`ProgressRecorded.shown`), so the task log gets one line per change worth seeing.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar

from airflow_insight.progress.records import ProgressRecord
from airflow_insight.progress.rules import StopDecision

#: Logger for progress records, apart from the run log (``insight.run_log``).
PROGRESS_LOGGER = "insight.progress"


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressStarted:
    """The first progress record of a job follows: says once what the record lines belong to."""

    log_level: ClassVar[int] = logging.INFO
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    job_id: str
    problem_name: str | None
    heartbeat_seconds: float

    def describe(self) -> str:
        """One log line naming the job and how to read the records that follow."""
        problem = f" (problem {self.problem_name})" if self.problem_name else ""
        return (
            f"Solver progress of Insight compute job {self.job_id}{problem}: a line per new "
            f"solution or moved gap, else one every {self.heartbeat_seconds:g} s; "
            f"best = best solution, bound = best bound, t = the solver's own time"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressRecorded:
    """A solver callback was answered and read into a progress record.

    ``shown`` is False when the record repeats what the last shown one said (an INTSOL's
    figures arrive again with the next GLOBALLOG): it is then logged at DEBUG only.
    """

    #: Adapters log this event on the progress logger, not the run log.
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    record: ProgressRecord
    shown: bool = True

    @property
    def log_level(self) -> int:
        """INFO for a record worth a line in the task log, DEBUG for a repeat."""
        return logging.INFO if self.shown else logging.DEBUG

    @property
    def job_id(self) -> str:
        """The compute job id."""
        return self.record.job_id

    def describe(self) -> str:
        """One log line."""
        return self.record.describe()


@dataclasses.dataclass(frozen=True, slots=True)
class SolveStopRequested:
    """A stop rule fired; the callback was answered ``interruptSolve: true``."""

    log_level: ClassVar[int] = logging.WARNING
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    job_id: str
    decision: StopDecision

    def describe(self) -> str:
        """One log line."""
        return (
            f"Insight compute job {self.job_id}: stopping the solve (interruptSolve=true), "
            f"stop rule {self.decision.rule['rule']}: {self.decision.reason}{_at(self.decision)}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressUnreadable:
    """A solver callback was answered but carried no figure a record could show."""

    log_level: ClassVar[int] = logging.DEBUG
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    job_id: str
    app_message_id: str
    app_message_type: str | None
    reason: str

    def describe(self) -> str:
        """One log line."""
        return (
            f"Insight compute job {self.job_id}: answered solver callback "
            f"{self.app_message_type} ({self.app_message_id}) without a progress record: "
            f"{self.reason}"
        )


def _at(decision: StopDecision) -> str:
    return "" if decision.solver_time is None else f" (solver time {decision.solver_time:.1f}s)"


ProgressEvent = ProgressStarted | ProgressRecorded | SolveStopRequested | ProgressUnreadable
