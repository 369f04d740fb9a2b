"""Deferrable DAGs for tests/airflow: dag.test() runs their triggers inline.

Downstream ``collect`` tasks write what they received as JSON to ``$INSIGHT_TEST_OUT``.
:class:`RecordingOperator` notes what the task state store, the XComs and the trigger kwargs held
at the moment it deferred, in :data:`DEFERRED` (dag.test() runs tasks in the test's process).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_insight.operators.insight import JOB_ID_XCOM_KEY, STATE_KEY, InsightJobOperator
from airflow_insight.sensors.insight import InsightJobSensor

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
REQUEST = {"computeJobType": "SOLVER"}
#: What each RecordingOperator saw right before it deferred (one dict per deferral).
DEFERRED: list[dict[str, Any]] = []


@task
def collect(result: Any) -> None:
    """Hand the upstream XCom to the test."""
    Path(os.environ["INSIGHT_TEST_OUT"]).write_text(json.dumps({"result": result}))


def _dag(dag_id: str, **task_args: Any) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args=task_args)


def _stored(context: Any) -> Any:
    """What the task state store holds (Airflow 3.3 on; None where there is no store)."""
    store = context.get("task_state_store")
    return None if store is None else store.get(STATE_KEY)


class RecordingOperator(InsightJobOperator):
    """Records the task state store, its job-id XCom and the trigger kwargs when deferring."""

    def _defer(self, context: Any, job_id: str) -> None:
        ti = context["ti"]
        seen: dict[str, Any] = {
            "job_id": job_id,
            "state": _stored(context),
            "xcom": ti.xcom_pull(task_ids=ti.task_id, key=JOB_ID_XCOM_KEY),
        }
        DEFERRED.append(seen)
        real_defer = self.defer

        def defer(**kwargs: Any) -> None:
            seen["trigger"] = kwargs["trigger"].serialize()
            seen["defer_timeout"] = kwargs.get("timeout")
            real_defer(**kwargs)

        self.defer = defer  # type: ignore[method-assign]
        super()._defer(context, job_id)


with _dag("td_success") as td_success:
    collect(RecordingOperator(task_id="solve", job_request=REQUEST, deferrable=True).output)

#: An object-storage URL (``file://``, read through Airflow's ObjectStoragePath) per run.
STORAGE_ROOT = (Path(tempfile.gettempdir()) / "airflow-insight-tests").as_uri()
MODEL_URL = (Path(__file__).parents[2] / "data" / "infeasible.lp").as_uri()

for _deferrable in (False, True):
    _name = "td_storage_deferred" if _deferrable else "td_storage_blocking"
    with _dag(_name) as _storage_dag:
        collect(
            InsightJobOperator(
                task_id="solve",
                job_request=REQUEST,
                payload=MODEL_URL,
                results_path=STORAGE_ROOT + "/{{ dag.dag_id }}/{{ run_id }}/results.zip",
                deferrable=_deferrable,
            ).output
        )
    globals()[_name] = _storage_dag

with _dag("td_split") as td_split:
    # A short silence limit: with its socket gone, the trigger learns the end over REST soon.
    collect(
        InsightJobOperator(
            task_id="solve", job_request=REQUEST, deferrable=True, silence_limit_seconds=0.3
        ).output
    )

with _dag("td_failed") as td_failed:
    InsightJobOperator(task_id="solve", job_request=REQUEST, deferrable=True)

with _dag("td_model_error") as td_model_error:
    InsightJobOperator(task_id="solve", job_request=REQUEST, deferrable=True)

with _dag("td_timeout") as td_timeout:
    # Long enough that the trigger follows a while first: Airflow 3.1 and 3.2's dag.test() takes
    # 5-6 s from the task's start date to its execute here.
    InsightJobOperator(
        task_id="solve",
        job_request=REQUEST,
        deferrable=True,
        execution_timeout=datetime.timedelta(seconds=10),
    )

with _dag("td_sensor") as td_sensor:
    submit = InsightJobOperator(task_id="submit", job_request=REQUEST, wait_for_termination=False)
    wait = InsightJobSensor(
        task_id="wait",
        compute_job_id="{{ ti.xcom_pull(task_ids='submit')['compute_job_id'] }}",
        deferrable=True,
        timeout=120,
    )
    submit >> wait
    collect(wait.output)

# The same wait in the sensor's other modes: a worker slot throughout, or one per poke.
for _mode in ("poke", "reschedule"):
    with _dag(f"td_sensor_{_mode}") as _sensor_dag:
        _submit = InsightJobOperator(
            task_id="submit", job_request=REQUEST, wait_for_termination=False
        )
        _wait = InsightJobSensor(
            task_id="wait",
            compute_job_id="{{ ti.xcom_pull(task_ids='submit')['compute_job_id'] }}",
            mode=_mode,
            poke_interval=1,
            timeout=120,
        )
        _submit >> _wait
        collect(_wait.output)
    globals()[f"td_sensor_{_mode}"] = _sensor_dag
