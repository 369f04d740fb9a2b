"""DAGs for the interrupt tests: a deferrable job run with ``airflow dags test`` and signalled."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_insight.operators.insight import InsightJobOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

for signal_name in ("sigint", "sigterm"):
    with DAG(f"t_{signal_name}", schedule=None, start_date=START, catchup=False):
        InsightJobOperator(
            task_id="solve",
            job_request={"computeJobType": "SOLVER"},
            job_id=f"{signal_name}-job",
            deferrable=True,
            retries=0,
        )
