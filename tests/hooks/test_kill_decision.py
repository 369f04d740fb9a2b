"""The one kill decision: its table, checked row by row, and the behaviour each place relies on."""

from __future__ import annotations

import pytest

from airflow_insight.hooks.kill_decision import (
    TABLE,
    UNANSWERED,
    UNLISTED,
    KillAction,
    Row,
    for_blocking_task,
    for_deferred_trigger,
    normalise,
)

CANCEL, LEAVE = KillAction.CANCEL, KillAction.LEAVE_RUNNING
#: A state as Airflow reports it, per row (the sentinel rows are reached through other inputs).
_ASKED = {UNLISTED: "some_new_state", UNANSWERED: "failed"}


def _deferred(state: object, latest: tuple[int, str] | None = None) -> KillAction:
    decision = for_deferred_trigger(state, try_number=1, compute_job_id="job-1", latest=latest)
    return decision.action


@pytest.mark.parametrize(("key", "row"), list(TABLE.items()), ids=list(TABLE))
def test_each_row_is_what_both_places_do(key: str, row: Row) -> None:
    state = _ASKED.get(key, None if key == "none" else key)
    known = key != UNANSWERED
    blocking = for_blocking_task(state, known=known)
    assert blocking.action is row.blocking.action
    if known:
        assert _deferred(state) is row.deferred.action
    assert blocking.reason and row.deferred.reason
    assert "{state}" not in blocking.reason, "the reason names the state it was given"
    if row.blocking.action is not row.deferred.action:
        assert row.why_they_differ, f"{key}: the columns differ and the row does not say why"
    else:
        assert not row.why_they_differ, f"{key}: the columns agree; nothing to explain"


def test_every_state_airflow_has_is_a_row() -> None:
    from airflow.utils.state import TaskInstanceState

    missing = {state.value for state in TaskInstanceState} - set(TABLE)
    assert not missing, f"add rows for {sorted(missing)}"


@pytest.mark.parametrize(
    ("state", "blocking", "deferred"),
    [
        ("failed", CANCEL, CANCEL),  # a user marked it failed
        ("success", CANCEL, CANCEL),  # a user marked it success
        ("restarting", CANCEL, CANCEL),  # cleared while it ran
        ("skipped", CANCEL, CANCEL),
        ("removed", CANCEL, CANCEL),
        ("upstream_failed", CANCEL, CANCEL),
        ("up_for_retry", LEAVE, LEAVE),  # Airflow ended the try; the next one re-attaches
        ("up_for_reschedule", LEAVE, LEAVE),
        ("deferred", LEAVE, LEAVE),  # a deploy, a crash, a reassignment: the task still waits
        ("running", LEAVE, CANCEL),  # a deploy's SIGTERM / cleared and running again
        ("queued", LEAVE, CANCEL),  # a newer try on its way / cleared and queued again
        ("scheduled", LEAVE, CANCEL),
        (None, LEAVE, CANCEL),  # reset by the scheduler (orphaned) / a user cleared it
        ("some_new_state", LEAVE, CANCEL),  # never cancel on a guess / left its deferral
    ],
)
def test_what_a_kill_does_per_state(
    state: str | None, blocking: KillAction, deferred: KillAction
) -> None:
    assert for_blocking_task(state).action is blocking
    assert _deferred(state) is deferred


@pytest.mark.parametrize("state", ["FAILED", " failed ", "Failed"])
def test_a_state_is_normalised_once_for_both_places(state: str) -> None:
    assert normalise(state) == "failed"
    assert for_blocking_task(state).cancels
    assert _deferred(state) is CANCEL


def test_an_enum_state_reads_as_its_value() -> None:
    from airflow.utils.state import TaskInstanceState

    assert normalise(TaskInstanceState.DEFERRED) == "deferred"
    assert _deferred(TaskInstanceState.DEFERRED) is LEAVE


def test_an_unanswered_question_never_cancels() -> None:
    assert not for_blocking_task("failed", known=False).cancels
    assert TABLE[UNANSWERED].deferred.action is LEAVE


@pytest.mark.parametrize(
    ("latest", "action"),
    [
        (None, LEAVE),
        ((1, "job-1"), LEAVE),  # this try's own (moved) trigger
        ((2, "job-1"), LEAVE),  # a later try re-attached to the job
        ((2, "job-2"), CANCEL),  # cleared; the new try has its own job
        ((1, "job-2"), LEAVE),  # not a later try: not proof
    ],
)
def test_a_deferred_task_of_a_later_try_on_another_job_orphans_this_one(
    latest: tuple[int, str] | None, action: KillAction
) -> None:
    assert _deferred("deferred", latest) is action
    assert _deferred("up_for_retry", latest) is LEAVE, "the refinement is for deferred only"
