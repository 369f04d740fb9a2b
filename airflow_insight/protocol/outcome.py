"""How a compute job ended: a value object, its verdict (§A7), and the exception it maps to.

:class:`JobOutcome` is the trigger event payload (``to_dict``/``from_dict``, JSON-safe, no
secrets) and the one input of the operator's "outcome to return value or exception" path.

URLs are kept *raw*, exactly as the server sent them (server-relative, §B3.4): the core does not
know the configured base URL, and a raw URL stays valid if the payload is read by a process with a
different proxy prefix. Resolve them with :meth:`ConnectionSettings.url` where they are used.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_insight.exceptions import JobCancelled, JobFailed, LocalProtocolError
from airflow_insight.protocol.statuses import (
    CANCELLED_STATUSES,
    DEFAULT_ACCEPTED_MODEL_STATUSES,
    JobStatus,
    is_terminal,
)

#: Longest run-log line quoted in a failure message; solver lines can be very long.
MAX_QUOTED_LINE_CHARS = 300


class Verdict(enum.StrEnum):
    """What an outcome means for the Airflow task."""

    SUCCESS = "success"
    #: ``COMPLETED`` with a null ``modelStatus``: success, reported as a warning (§A7).
    SUCCESS_WITHOUT_MODEL_STATUS = "success_without_model_status"
    FAILURE = "failure"
    CANCELLED = "cancelled"

    @property
    def succeeded(self) -> bool:
        """True for both success verdicts."""
        return self in (Verdict.SUCCESS, Verdict.SUCCESS_WITHOUT_MODEL_STATUS)


@dataclasses.dataclass(frozen=True, slots=True)
class JobOutcome:
    """The end state of one compute job, as the client saw it."""

    compute_job_id: str
    status: str
    model_status: str | None = None
    execution_attempts: int = 0
    #: Raw server-relative URLs (see the module docstring).
    result_url: str | None = None
    run_log_url: str | None = None
    #: Position of the last run-log line forwarded to the task log; -1 when none.
    last_run_log_line: int = -1
    #: The last few forwarded run-log lines, quoted in failure messages.
    run_log_tail: tuple[str, ...] = ()
    #: Why the client decided the job ended, when not from a status (e.g. a 404 over REST).
    detail: str | None = None
    #: True when the whole run log is known to have been forwarded, through
    #: ``last_run_log_line``: the final REST log was read, or ``RUNLOG_COMPLETED`` counted exactly
    #: the lines forwarded, and no line was given up. False when not known (then a resume reads
    #: the REST run log for anything after ``last_run_log_line``).
    run_log_complete: bool = False

    # ----------------------------------------------------------------------------- verdict

    def verdict(
        self, accepted_model_statuses: Iterable[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    ) -> Verdict:
        """Classify per §A7 with the given accepted model statuses (default ``{"OK"}``)."""
        if self.status in CANCELLED_STATUSES:
            return Verdict.CANCELLED
        if self.status == JobStatus.COMPLETED:
            if self.model_status is None:
                return Verdict.SUCCESS_WITHOUT_MODEL_STATUS
            if self.model_status in frozenset(accepted_model_statuses):
                return Verdict.SUCCESS
        # FAILED, COMPLETED with a model status not accepted, and (defensively) a non-terminal
        # status, which only reaches an outcome if the caller built one by hand.
        return Verdict.FAILURE

    def succeeded(
        self, accepted_model_statuses: Iterable[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    ) -> bool:
        """Tell whether the task should succeed."""
        return self.verdict(accepted_model_statuses).succeeded

    def warning(
        self, accepted_model_statuses: Iterable[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    ) -> str | None:
        """The warning to log for a success without a model status, else None."""
        if self.verdict(accepted_model_statuses) is Verdict.SUCCESS_WITHOUT_MODEL_STATUS:
            return (
                f"Insight compute job {self.compute_job_id!r} COMPLETED without a model status; "
                "treating it as success. Check the run log and the results."
            )
        return None

    def error(
        self, accepted_model_statuses: Iterable[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    ) -> JobFailed | None:
        """The exception that describes a failed or cancelled job; None on success."""
        verdict = self.verdict(accepted_model_statuses)
        if verdict.succeeded:
            return None
        kind = JobCancelled if verdict is Verdict.CANCELLED else JobFailed
        return kind(
            self.failure_message(accepted_model_statuses),
            compute_job_id=self.compute_job_id,
            status=self.status,
            model_status=self.model_status,
        )

    def raise_for_failure(
        self, accepted_model_statuses: Iterable[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    ) -> None:
        """Raise :class:`JobFailed` or :class:`JobCancelled` unless the job succeeded."""
        error = self.error(accepted_model_statuses)
        if error is not None:
            raise error

    def failure_message(
        self, accepted_model_statuses: Iterable[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    ) -> str:
        """A message naming the job, its status and model status, and the last run-log lines."""
        model = "null" if self.model_status is None else repr(self.model_status)
        parts = [
            f"Insight compute job {self.compute_job_id!r} ended with status {self.status}, "
            f"model status {model}"
        ]
        if self.status == JobStatus.COMPLETED and self.model_status is not None:
            accepted = ", ".join(sorted(frozenset(accepted_model_statuses))) or "none"
            parts.append(f" (accepted model statuses: {accepted})")
        elif not is_terminal(self.status):
            parts.append(" (not a terminal status)")
        if self.execution_attempts > 1:
            parts.append(f" after {self.execution_attempts} execution attempts")
        if self.detail:
            parts.append(f"; {self.detail}")
        parts.append(".")
        if self.run_log_tail:
            parts.append(f" Last {len(self.run_log_tail)} run-log lines:")
            parts.extend(f"\n  {_clip(line)}" for line in self.run_log_tail)
        else:
            parts.append(" No run-log lines were received.")
        return "".join(parts)

    def run_log_forwarded_through(self, last_forwarded_line: int) -> bool:
        """True when a reader that forwarded through ``last_forwarded_line`` has the whole run
        log: it is known complete and ends exactly at that line (no REST fetch needed)."""
        return self.run_log_complete and last_forwarded_line == self.last_run_log_line

    # ----------------------------------------------------------------------------- REST

    @classmethod
    def from_job_document(cls, job_id: str, document: Mapping[str, Any]) -> JobOutcome:
        """Read a REST job document (§B3.4) as an outcome, as liberally as a status message.

        Both spellings of the result URL are read; a missing status reads as ``QUEUED`` (a job
        not started yet) and missing or non-integer ``executionAttempts`` as 0. Used for jobs
        looked at over REST (found finished, polled by a sensor) and by the follower.
        """
        attempts = document.get("executionAttempts")
        if not isinstance(attempts, int) or isinstance(attempts, bool):
            attempts = 0
        return cls(
            compute_job_id=job_id,
            status=document_text(document, "status") or JobStatus.QUEUED.value,
            model_status=document_text(document, "modelStatus"),
            execution_attempts=attempts,
            result_url=document_text(document, "resultUrl", "resultsUrl"),
            run_log_url=document_text(document, "runLogUrl"),
        )

    # ----------------------------------------------------------------------------- payload

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the trigger event payload)."""
        return {
            "compute_job_id": self.compute_job_id,
            "status": self.status,
            "model_status": self.model_status,
            "execution_attempts": self.execution_attempts,
            "result_url": self.result_url,
            "run_log_url": self.run_log_url,
            "last_run_log_line": self.last_run_log_line,
            "run_log_tail": list(self.run_log_tail),
            "detail": self.detail,
            "run_log_complete": self.run_log_complete,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOutcome:
        """Rebuild an outcome from :meth:`to_dict` output; unknown keys are ignored."""
        try:
            job_id = data["compute_job_id"]
            status = data["status"]
        except KeyError as exc:
            raise LocalProtocolError(f"not a JobOutcome payload: missing {exc}") from exc
        if not isinstance(job_id, str) or not isinstance(status, str):
            raise LocalProtocolError("not a JobOutcome payload: job id and status must be text")
        tail = data.get("run_log_tail") or ()
        return cls(
            compute_job_id=job_id,
            status=status,
            model_status=_optional_text(data, "model_status"),
            execution_attempts=_int(data, "execution_attempts", 0),
            result_url=_optional_text(data, "result_url"),
            run_log_url=_optional_text(data, "run_log_url"),
            last_run_log_line=_int(data, "last_run_log_line", -1),
            run_log_tail=tuple(str(line) for line in tail),
            detail=_optional_text(data, "detail"),
            # Payloads written before the field existed: not known complete (the safe reading).
            run_log_complete=_bool(data, "run_log_complete", False),
        )


def document_text(document: Mapping[str, Any], *names: str) -> str | None:
    """The first of the fields ``names`` that holds text (a field's spellings, newest first)."""
    for name in names:
        value = document.get(name)
        if isinstance(value, str):
            return value
    return None


def _clip(line: str) -> str:
    if len(line) <= MAX_QUOTED_LINE_CHARS:
        return line
    return line[: MAX_QUOTED_LINE_CHARS - 1] + "…"


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LocalProtocolError(f"not a JobOutcome payload: {key} must be text or null")
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise LocalProtocolError(f"not a JobOutcome payload: {key} must be true or false")
    return value


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LocalProtocolError(f"not a JobOutcome payload: {key} must be an integer")
    return value
