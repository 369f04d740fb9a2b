"""Solve the production-planning model on Insight every day and report how the solve went.

``scripts/demo`` runs this DAG against the bundled emulator (it sets AIRFLOW_CONN_INSIGHT_DEFAULT).
The model directory next to this file is zipped by the operator and sent as the job's payload; the
results zip lands under ``$AIRFLOW_HOME/insight-results/``.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from airflow.sdk import dag, task

from airflow_insight.operators.insight import InsightJobOperator

MODEL_DIR = Path(__file__).parent / "models" / "production_plan"
RESULTS_DIR = Path(os.environ.get("AIRFLOW_HOME", "/tmp")) / "insight-results"


@dag(
    dag_id="insight_optimization_run",
    schedule="@daily",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    default_args={"retries": 2, "retry_delay": datetime.timedelta(seconds=30)},
    tags=["insight", "example"],
)
def insight_optimization_run() -> None:
    """One compute job, then a task reading its XCom and its results zip."""
    solve = InsightJobOperator(
        task_id="solve_production_plan",
        job_request={
            "computeJobType": "SOLVER",
            "solver": {"resultsToInclude": ["SOLUTION"], "controls": {"XPRS_MAXTIME": "-60"}},
        },
        payload=str(MODEL_DIR),
        results_path=str(RESULTS_DIR / "{{ ds }}" / "{{ ti.task_id }}-results.zip"),
        execution_timeout=datetime.timedelta(minutes=30),
    )

    @task
    def report(result: dict[str, object]) -> str:
        """Print the model status and the solution status from the results zip."""
        import json
        import zipfile

        with zipfile.ZipFile(str(result["results_path"])) as archive:
            solution = json.loads(archive.read("solution-status.json"))
        print(f"Insight job {result['compute_job_id']}: model status {result['model_status']}")
        for problem, status in solution.items():
            print(f"Solution status of {problem}: {status}")
        return ", ".join(f"{problem}: {status}" for problem, status in solution.items())

    report(solve.output)


insight_optimization_run()
