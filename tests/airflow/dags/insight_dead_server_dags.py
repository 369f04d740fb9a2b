"""DAGs for tests/airflow/test_dead_server.py: the server dies mid-job and comes back.

One try, then one retry at once. :data:`ON_RETRY` holds what the test wants done when Airflow puts
the task up for retry (bring the server back), run by the task's ``on_retry_callback``, which
dag.test() calls in the test's process before it starts the next try.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_insight.operators.insight import InsightJobOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
REQUEST = {"computeJobType": "SOLVER"}
#: Called (in order) when a task of these DAGs is put up for retry.
ON_RETRY: list[Callable[[], None]] = []


def _on_retry(context: Any) -> None:
    for action in ON_RETRY:
        action()


@task
def collect(result: Any) -> None:
    """Hand the upstream XCom to the test."""
    Path(os.environ["INSIGHT_TEST_OUT"]).write_text(json.dumps({"result": result}))


def _dag(dag_id: str) -> DAG:
    task_args = {
        "retries": 1,
        "retry_delay": datetime.timedelta(0),
        "on_retry_callback": _on_retry,
    }
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args=task_args)


with _dag("t_dead_blocking") as t_dead_blocking:
    collect(InsightJobOperator(task_id="solve", job_request=REQUEST).output)

with _dag("t_dead_deferred") as t_dead_deferred:
    collect(InsightJobOperator(task_id="solve", job_request=REQUEST, deferrable=True).output)
