"""Compute-job statuses and what they mean for the end of a task (§A7)."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    """The compute-job statuses this client knows; the server may send others."""

    QUEUED = "QUEUED"
    CONNECTING = "CONNECTING"
    EXECUTING = "EXECUTING"
    COMPLETING = "COMPLETING"
    CANCELLING = "CANCELLING"
    DELETING = "DELETING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DELETED = "DELETED"


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DELETED}
)
#: Terminal statuses that mean someone stopped the job rather than the job failing.
CANCELLED_STATUSES: frozenset[str] = frozenset({JobStatus.CANCELLED, JobStatus.DELETED})
#: The model statuses that count as success at ``COMPLETED`` unless configured otherwise.
DEFAULT_ACCEPTED_MODEL_STATUSES: frozenset[str] = frozenset({"OK"})


def is_terminal(status: str) -> bool:
    """Tell whether ``status`` ends the job; unknown statuses are not terminal (§A7)."""
    return status in TERMINAL_STATUSES
