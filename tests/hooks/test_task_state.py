"""A blocking task's kill asks its supervisor for the task instance's state.

The real supervisor is asked in tests/airflow (dag.test) and tests/e2e (a real worker); here a
stand-in task instance answers as the supervisor does (``{run_id: {task key: state}}``), fails,
or blocks as a channel whose lock the interrupted thread holds.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_insight.hooks.kill_decision import KillAction
from airflow_insight.hooks.task_state import current_task_state


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
    assert (answer.state, answer.known, answer.decision.action) == (
        "failed",
        True,
        KillAction.CANCEL,
    )
    assert ti.asked == [{"dag_id": "d", "map_index": -1, "task_ids": ["solve"], "run_ids": ["r1"]}]


def test_a_mapped_task_is_read_by_its_map_index_key() -> None:
    ti = _TaskInstance({"r1": {"solve_2": "running", "solve_3": "failed"}}, map_index=3)
    assert current_task_state(ti).state == "failed"


@pytest.mark.parametrize("states", [{}, {"r1": {}}, {"r0": {"solve": "failed"}}])
def test_no_such_task_instance_is_unknown(states: dict[str, Any]) -> None:
    answer = current_task_state(_TaskInstance(states))
    assert answer.decision.action is KillAction.LEAVE_RUNNING and not answer.told
    assert "knows no such task instance" in answer.describe()


def test_a_failing_supervisor_is_unknown() -> None:
    def broken() -> dict[str, Any]:
        raise BrokenPipeError("supervisor gone")

    answer = current_task_state(_TaskInstance(broken))
    assert answer.decision.action is KillAction.LEAVE_RUNNING and not answer.told
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
    assert answer.decision.action is KillAction.LEAVE_RUNNING and not answer.told
    assert "no answer from the supervisor" in answer.describe()
