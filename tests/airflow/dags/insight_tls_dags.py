"""DAGs for the TLS tests: one Insight task per mode, with retries a rejected certificate skips."""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_insight.operators.insight import InsightJobOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
RETRIES = {"retries": 3, "retry_delay": datetime.timedelta(0)}


def _dag(dag_id: str, **task_args: Any) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args=task_args)


with _dag("tt_blocking", **RETRIES) as tt_blocking:
    InsightJobOperator(task_id="solve", job_request={"computeJobType": "SOLVER"})

with _dag("tt_deferrable", **RETRIES) as tt_deferrable:
    InsightJobOperator(task_id="solve", job_request={"computeJobType": "SOLVER"}, deferrable=True)
