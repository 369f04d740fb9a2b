"""Solver-progress DAGs for tests/airflow: a real xpress MIP solve stopped by a gap rule.

The model and the output folder come from the run's conf (``dag.test(run_conf=...)``): ``model``
is the payload, ``out`` the folder for the picture and the incumbent. The ``collect`` task writes
the solve's result as JSON to ``$INSIGHT_TEST_OUT``.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.progress import StopAtGap

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
#: The gap the rule stops at: a knapsack's root node gets below it long before it is optimal.
TARGET_GAP = 0.01


@task
def collect_progress(result: Any) -> None:
    """Hand the solve's result (XCom) to the test."""
    Path(os.environ["INSIGHT_TEST_OUT"]).write_text(json.dumps({"result": result}))


class LostAfterSubmitOperator(InsightJobOperator):
    """Submits (with the progress callbacks), then dies on its first try: the solve pauses at its
    first callback with nobody to answer, until the retry re-attaches."""

    def _follow_blocking(self, context: Any, decision: Any, request: Any, payload: Any) -> Any:
        if context["ti"].try_number == 1:
            self.hook.submit_job(request, payload)
            raise RuntimeError("worker lost after submitting")
        return super()._follow_blocking(context, decision, request, payload)


def _progress_dag(
    dag_id: str,
    *,
    deferrable: bool = False,
    operator: type[InsightJobOperator] = InsightJobOperator,
    **task_args: Any,
) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args=task_args) as dag:
        solve = operator(
            task_id="solve",
            job_request={"computeJobType": "SOLVER", "solver": {"problemType": "MIP"}},
            payload="{{ dag_run.conf['model'] }}",
            solver_progress=True,
            stop_rules=[StopAtGap(TARGET_GAP)],
            progress_plot_path="{{ dag_run.conf['out'] }}/{{ ti.task_id }}-progress.png",
            solution_path="{{ dag_run.conf['out'] }}/{{ ti.task_id }}-incumbent.slx",
            deferrable=deferrable,
        )
        collect_progress(solve.output)
    return dag


t_progress = _progress_dag("t_progress")
td_progress = _progress_dag("td_progress", deferrable=True)
t_progress_reattach = _progress_dag(
    "t_progress_reattach",
    operator=LostAfterSubmitOperator,
    retries=1,
    retry_delay=datetime.timedelta(0),
)
