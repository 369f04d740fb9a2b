"""The trigger's on_kill decision: a table over every task-instance state Airflow 3.3 has."""

from __future__ import annotations

import pytest

from airflow_insight.triggers.kill import KillAction, decide
from airflow_insight.triggers.watermark import Watermark

CANCEL, LEAVE = KillAction.CANCEL, KillAction.LEAVE_RUNNING


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("deferred", LEAVE),  # a deploy, a crash, a reassignment: the task still waits
        ("up_for_retry", LEAVE),  # Airflow ended the try; the next one re-attaches
        ("up_for_reschedule", LEAVE),
        ("failed", CANCEL),  # a user marked it failed
        ("success", CANCEL),  # a user marked it success
        (None, CANCEL),  # a user cleared it
        ("scheduled", CANCEL),  # cleared, and already scheduled again
        ("queued", CANCEL),
        ("running", CANCEL),
        ("restarting", CANCEL),
        ("skipped", CANCEL),
        ("upstream_failed", CANCEL),
        ("removed", CANCEL),
    ],
)
def test_state_decides(state: str | None, action: KillAction) -> None:
    decision = decide(state, None, try_number=1, compute_job_id="job-1")
    assert decision.action is action
    assert decision.reason


@pytest.mark.parametrize(
    ("stored", "action"),
    [
        (None, LEAVE),
        (Watermark("job-1", 0, 10, try_number=1), LEAVE),  # this try's own (moved) trigger
        (Watermark("job-1", 0, 10, try_number=2), LEAVE),  # a later try re-attached to the job
        (Watermark("job-2", 0, 10, try_number=2), CANCEL),  # cleared; the new try has its own job
        (Watermark("job-2", 0, 10, try_number=1), LEAVE),  # not a later try: not proof
    ],
)
def test_a_deferred_task_of_a_later_try_on_another_job_orphans_this_one(
    stored: Watermark | None, action: KillAction
) -> None:
    assert decide("deferred", stored, try_number=1, compute_job_id="job-1").action is action
