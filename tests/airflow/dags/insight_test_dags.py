"""DAGs for tests/airflow (dag.test() needs them in the DAGs folder to serialize them).

Downstream ``collect`` tasks write what they received as JSON to ``$INSIGHT_TEST_OUT``.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_insight.links import INSIGHT_JOB_URL_XCOM_KEY
from airflow_insight.operators.insight import InsightJobOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
MODEL = Path(__file__).parents[3] / "example_dags" / "models" / "production_plan"
REQUEST = {"computeJobType": "SOLVER"}
#: Operators that started executing, so a test thread can call on_kill on the live instance.
RUNNING: list[InsightJobOperator] = []


@task
def collect(result: Any, link: Any = None) -> None:
    """Hand the upstream XComs to the test."""
    Path(os.environ["INSIGHT_TEST_OUT"]).write_text(json.dumps({"result": result, "link": link}))


def _dag(dag_id: str, **task_args: Any) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args=task_args)


class KillableOperator(InsightJobOperator):
    """Registers itself when it starts, so the test can kill it from another thread."""

    def execute(self, context: Any) -> Any:
        RUNNING.append(self)
        return super().execute(context)


class FailFirstTryOperator(InsightJobOperator):
    """Submits, then dies on its first try, as if the worker were lost while following."""

    def _follow_blocking(self, context: Any, decision: Any, request: Any, payload: Any) -> Any:
        if context["ti"].try_number == 1:
            self.hook.submit_job(request)
            raise RuntimeError("worker lost after submitting")
        return super()._follow_blocking(context, decision, request, payload)


with _dag("t_success") as t_success:
    solve = InsightJobOperator(
        task_id="solve",
        job_request=REQUEST,
        payload=str(MODEL),
        results_path=os.environ.get("INSIGHT_TEST_RESULTS_DIR", "/tmp") + "/{{ ti.task_id }}.zip",
    )
    collect(solve.output, solve.output[INSIGHT_JOB_URL_XCOM_KEY])

with _dag("t_failed") as t_failed:
    InsightJobOperator(task_id="solve", job_request=REQUEST)

with _dag("t_model_error") as t_model_error:
    InsightJobOperator(task_id="solve", job_request=REQUEST)

with _dag("t_rejected", retries=3, retry_delay=datetime.timedelta(0)) as t_rejected:
    InsightJobOperator(
        task_id="solve", job_request={**REQUEST, "execution": {"executionService": "NOPE"}}
    )

with _dag("t_timeout") as t_timeout:
    InsightJobOperator(
        task_id="solve",
        job_request=REQUEST,
        execution_timeout=datetime.timedelta(seconds=1.5),
        cancel_wait_seconds=5.0,
    )

with _dag("t_kill") as t_kill:
    KillableOperator(task_id="solve", job_request=REQUEST, cancel_wait_seconds=5.0)

with _dag("t_reattach", retries=1, retry_delay=datetime.timedelta(0)) as t_reattach:
    collect(FailFirstTryOperator(task_id="solve", job_request=REQUEST).output)

with _dag("t_interrupt", retries=2, retry_delay=datetime.timedelta(0)) as t_interrupt:
    InsightJobOperator(task_id="solve", job_request=REQUEST, cancel_wait_seconds=10.0)
