"""The trigger's event payload: one value class, JSON-safe, whose errors round-trip losslessly.

Shape of ``TriggerPayload.to_dict()`` (the ``event`` the task's ``execute_complete`` receives)::

    {"kind": "finished" | "timeout" | "error",
     "compute_job_id": str,
     "last_run_log_line": int,     # the last line the trigger(s) forwarded; -1: none
     "outcome": {...} | None,      # JobOutcome.to_dict() when finished
     "cancelled": bool,            # timeout / interrupt: whether the job was cancelled
     "error": {...} | None,        # InsightError.to_dict() when an error ended the wait
     "progress": {...} | None,     # SolverProgress.summary() when finished with solver progress
     "log_unread": bool}           # the triggerer had not read the trigger's last log records

No secret is in it: outcomes hold raw server URLs and statuses, errors their message and fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from airflow_insight.exceptions import InsightError, InsightTimeout, LocalProtocolError
from airflow_insight.protocol.outcome import JobOutcome

Kind = Literal["finished", "timeout", "error"]
_KINDS: frozenset[str] = frozenset({"finished", "timeout", "error"})


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerPayload:
    """How the trigger's wait for one job ended."""

    kind: Kind
    compute_job_id: str
    last_run_log_line: int = -1
    outcome: JobOutcome | None = None
    cancelled: bool = False
    error: InsightError | None = None
    #: The solver-progress summary (JSON-safe) of a job followed with ``solver_progress``.
    progress: Mapping[str, Any] | None = None
    #: The trigger fired before its triggerer had read all it logged (``.log_delivery``): the
    #: last run-log lines may be in the triggerer's own log. The task says so in its log.
    log_unread: bool = False

    @classmethod
    def finished(
        cls, outcome: JobOutcome, progress: Mapping[str, Any] | None = None
    ) -> TriggerPayload:
        """The job ended (in any status): the task decides what the outcome means."""
        return cls(
            "finished",
            outcome.compute_job_id,
            outcome.last_run_log_line,
            outcome,
            progress=progress,
        )

    @classmethod
    def timed_out(cls, job_id: str, last_run_log_line: int, cancelled: bool) -> TriggerPayload:
        """``end_by`` (``execution_timeout``) came first."""
        return cls("timeout", job_id, last_run_log_line, cancelled=cancelled)

    @classmethod
    def failed(
        cls, job_id: str, last_run_log_line: int, error: InsightError, cancelled: bool = False
    ) -> TriggerPayload:
        """An error ended the wait."""
        return cls("error", job_id, last_run_log_line, cancelled=cancelled, error=error)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe event payload (shape in the module docstring)."""
        return {
            "kind": self.kind,
            "compute_job_id": self.compute_job_id,
            "last_run_log_line": self.last_run_log_line,
            "outcome": None if self.outcome is None else self.outcome.to_dict(),
            "cancelled": self.cancelled,
            "error": None if self.error is None else self.error.to_dict(),
            "progress": None if self.progress is None else dict(self.progress),
            "log_unread": self.log_unread,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriggerPayload:
        """Read an event payload; :class:`LocalProtocolError` for one this trigger never sends."""
        kind = data.get("kind")
        if kind not in _KINDS:
            raise LocalProtocolError(f"not an InsightJobTrigger event: kind {kind!r}")
        outcome = data.get("outcome")
        error = data.get("error")
        if error is None and "error_type" in data:
            # An event of version 0.1 (a task deferred before an upgrade): flat error fields.
            error = {
                "type": data.get("error_type"),
                "message": data.get("message"),
                "permanent": data.get("permanent"),
            }
        last = data.get("last_run_log_line", -1)
        progress = data.get("progress")
        return cls(
            kind=kind,
            compute_job_id=str(data.get("compute_job_id", "")),
            last_run_log_line=last if isinstance(last, int) else -1,
            outcome=JobOutcome.from_dict(outcome) if isinstance(outcome, Mapping) else None,
            cancelled=bool(data.get("cancelled", False)),
            error=InsightError.from_dict(error) if isinstance(error, Mapping) else None,
            progress=dict(progress) if isinstance(progress, Mapping) else None,
            log_unread=data.get("log_unread") is True,
        )

    def result(self) -> JobOutcome:
        """The outcome, or raise what ended the wait (the error as it was raised)."""
        if self.kind == "finished" and self.outcome is not None:
            return self.outcome
        if self.kind == "timeout":
            state = "cancelled" if self.cancelled else "could NOT be cancelled (check Insight)"
            raise InsightTimeout(
                "execution_timeout reached while following Insight compute job "
                f"{self.compute_job_id!r}; the job {state}"
            )
        if self.error is not None:
            raise self.error
        raise LocalProtocolError(f"incomplete InsightJobTrigger event: {self.to_dict()!r}")
