"""Where a deferred task ends: the plan the operator hands its trigger, or a worker resume."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.triggers.end import EndPlan, worker_needed


def _plan(**arguments: Any) -> dict[str, Any] | None:
    operator = InsightJobOperator(task_id="solve", deferrable=True, **arguments)
    return operator._end_plan()


def test_with_nothing_for_a_worker_the_trigger_gets_the_whole_end() -> None:
    plan = _plan(
        results_path="s3://aws_default@bucket/results.zip",
        solution_path="gs://bucket/incumbent.sol",
        progress_plot_path="file:///shared/plot.png",
        solver_progress=True,
        stop_rules=[{"rule": "relative_gap", "relative_gap": 0.02}],
        on_finish="delete",
    )
    assert plan is not None
    # The job id and the link were pushed before deferring: the plan pushes no XCom of its own.
    assert EndPlan.from_json(plan) == EndPlan(
        results_path="s3://aws_default@bucket/results.zip",
        solution_path="gs://bucket/incumbent.sol",
        progress_plot_path="file:///shared/plot.png",
        with_progress=True,
        target_gap=0.02,
        delete=True,
    )
    assert _plan() == EndPlan().to_json()


@pytest.mark.parametrize(
    "arguments",
    [
        {"resume_on_worker": True},
        {"results_path": "/data/results.zip"},
        {"results_path": "results.zip"},
        {"solver_progress": True, "progress_plot_path": "/data/plot.png"},
        {"solver_progress": True, "solution_path": "s3://b/x.sol", "progress_plot_path": "p.png"},
    ],
)
def test_a_local_path_or_resume_on_worker_keeps_the_worker_resume(
    arguments: dict[str, Any],
) -> None:
    assert _plan(**arguments) is None


def test_a_success_callback_keeps_the_worker_resume() -> None:
    """Airflow's DAG processor runs only failure callbacks of a task a trigger ended."""
    assert _plan(on_success_callback=lambda context: None) is None
    assert _plan(on_failure_callback=lambda context: None) is not None


def test_a_subclass_with_its_own_execute_complete_resumes_on_a_worker() -> None:
    class Mine(InsightJobOperator):
        def execute_complete(self, context: Any, event: Any) -> Any:
            return {"mine": super().execute_complete(context, event)}

    assert Mine(task_id="solve", deferrable=True)._end_plan() is None


def test_the_reason_names_the_local_path_and_what_to_give_instead() -> None:
    why = worker_needed({"results_path": None, "solution_path": "/data/x.sol"})
    assert why is not None
    assert "solution_path '/data/x.sol' is a local path" in why
    assert "object-storage URL" in why
    assert worker_needed({"results_path": "s3://b/r.zip", "solution_path": None}) is None
