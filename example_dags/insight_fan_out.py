"""Fan out: one mapped InsightJobOperator per (model, scenario), all running side by side.

Each mapped task instance gets its own compute job id (derived from the map index) and its own
task log with that job's run log. A scenario is a set of solver controls.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from airflow.sdk import dag, task

from airflow_insight.operators.insight import InsightJobOperator

MODELS = Path(__file__).parent / "models"
SCENARIOS = {
    "baseline": {},
    "quick": {"XPRS_MAXTIME": "-5"},
    "primal": {"XPRS_DEFAULTALG": "3"},
}


@dag(
    dag_id="insight_fan_out",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    default_args={"retries": 1},
    tags=["insight", "example"],
)
def insight_fan_out() -> None:
    """Solve both models under every scenario, then summarise the model statuses."""
    cases = [
        {
            "payload": str(MODELS / model),
            "job_request": {"computeJobType": "SOLVER", "solver": {"controls": controls}},
        }
        for model in ("production_plan", "production_plan_peak")
        for controls in SCENARIOS.values()
    ]
    solves = InsightJobOperator.partial(task_id="solve").expand_kwargs(cases)

    @task
    def summary(results: list[dict[str, object]]) -> dict[str, object]:
        """Model status per compute job."""
        statuses = {str(r["compute_job_id"]): r["model_status"] for r in results}
        for job_id, status in statuses.items():
            print(f"{job_id}: {status}")
        return statuses

    summary(solves.output)


insight_fan_out()
