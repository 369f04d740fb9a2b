"""The kill decision: which task-instance states mean a user stopped the task, and asking for it.

The real supervisor is asked in tests/airflow (dag.test) and tests/e2e (a real worker); here a
stand-in task instance answers as the supervisor does (``{run_id: {task key: state}}``), fails,
or blocks as a channel whose lock the interrupted thread holds.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_insight.hooks.task_state import StopVerdict, current_task_state, stop_verdict


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        ("failed", StopVerdict.USER_STOPPED),  # marked failed
        ("success", StopVerdict.USER_STOPPED),  # marked success
        ("restarting", StopVerdict.USER_STOPPED),  # cleared while running
        ("skipped", StopVerdict.USER_STOPPED),
        ("removed", StopVerdict.USER_STOPPED),
        ("FAILED", StopVerdict.USER_STOPPED),
        ("running", StopVerdict.STILL_OWNED),  # a deploy's SIGTERM: still ours
        ("up_for_retry", StopVerdict.STILL_OWNED),  # heartbeat timeout: the retry re-attaches
        ("queued", StopVerdict.STILL_OWNED),  # a newer try is on its way
        ("deferred", StopVerdict.STILL_OWNED),
        (None, StopVerdict.STILL_OWNED),  # reset by the scheduler (orphaned)
        ("some_new_state", StopVerdict.UNKNOWN),  # never cancel on a guess
    ],
)
def test_stop_verdict_per_state(state: str | None, verdict: StopVerdict) -> None:
    assert stop_verdict(state) is verdict
    assert verdict.cancels is (verdict is StopVerdict.USER_STOPPED)


def test_an_unknown_state_never_cancels() -> None:
    assert stop_verdict("failed", known=False) is StopVerdict.UNKNOWN
    assert not StopVerdict.UNKNOWN.cancels


class _TaskInstance:
    """Answers like RuntimeTaskInstance.get_task_states, from a fixed mapping or a callable."""

    dag_id = "d"
    run_id = "r1"
    task_id = "solve"

    def __init__(self, answer: Any, map_index: int = -1) -> None:
        self.answer = answer
        self.map_index = map_index
        self.asked: list[dict[str, Any]] = []

    def get_task_states(self, dag_id: str, **criteria: Any) -> dict[str, Any]:
        self.asked.append({"dag_id": dag_id, **criteria})
        if callable(self.answer):
            result: dict[str, Any] = self.answer()
            return result
        return dict(self.answer)


def test_asks_for_exactly_this_task_instance() -> None:
    ti = _TaskInstance({"r1": {"solve": "failed", "other": "running"}})
    answer = current_task_state(ti)
    assert (answer.state, answer.known, answer.verdict) == ("failed", True, "user stopped")
    assert ti.asked == [{"dag_id": "d", "map_index": -1, "task_ids": ["solve"], "run_ids": ["r1"]}]


def test_a_mapped_task_is_read_by_its_map_index_key() -> None:
    ti = _TaskInstance({"r1": {"solve_2": "running", "solve_3": "failed"}}, map_index=3)
    assert current_task_state(ti).state == "failed"


@pytest.mark.parametrize("states", [{}, {"r1": {}}, {"r0": {"solve": "failed"}}])
def test_no_such_task_instance_is_unknown(states: dict[str, Any]) -> None:
    answer = current_task_state(_TaskInstance(states))
    assert answer.verdict is StopVerdict.UNKNOWN
    assert "knows no such task instance" in answer.describe()


def test_a_failing_supervisor_is_unknown() -> None:
    def broken() -> dict[str, Any]:
        raise BrokenPipeError("supervisor gone")

    answer = current_task_state(_TaskInstance(broken))
    assert answer.verdict is StopVerdict.UNKNOWN
    assert "BrokenPipeError: supervisor gone" in answer.describe()


def test_a_blocked_channel_is_unknown_after_the_timeout() -> None:
    """The kill runs on the thread it interrupted; if that thread holds the channel's lock the
    question cannot be answered, and the kill must not wait for it."""
    held = threading.Lock()
    held.acquire()

    def blocked() -> dict[str, Any]:
        with held:
            return {"r1": {"solve": "failed"}}

    try:
        answer = current_task_state(_TaskInstance(blocked), timeout_seconds=0.2)
    finally:
        held.release()
    assert answer.verdict is StopVerdict.UNKNOWN
    assert "no answer from the supervisor" in answer.describe()
