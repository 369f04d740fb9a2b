"""Which operators Airflow starts in the triggerer: decided when the DAG file builds them, and
carried by the serialized DAG the scheduler reads (no metadata DB needed)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_insight.compat import features
from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.triggers.start import START_CLASSPATH, InsightJobStartTrigger

needs_feature = pytest.mark.skipif(
    not features.start_in_triggerer().on, reason=features.start_in_triggerer().describe()
)


class ExecuteOverridden(InsightJobOperator):
    def execute(self, context: Any) -> Any:
        return super().execute(context)


def _serialized_tasks(dag: DAG) -> dict[str, dict[str, Any]]:
    from airflow.serialization import serialized_objects

    # Before Airflow 3.2 the serializer is SerializedDAG.
    serializer = getattr(serialized_objects, "DagSerialization", None)
    if serializer is None:
        serializer = serialized_objects.SerializedDAG
    data = serializer.to_dict(dag)
    return {task["__var"]["task_id"]: task["__var"] for task in data["dag"]["tasks"]}


@needs_feature
def test_a_deferrable_task_without_payload_starts_in_the_triggerer_and_is_serialized_so() -> None:
    with DAG("start_dag", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
        operator = InsightJobOperator(
            task_id="solve",
            deferrable=True,
            job_request={"computeJobType": "{{ 'SOLVER' }}"},
            accepted_model_statuses=["OK"],
            execution_timeout=datetime.timedelta(minutes=5),
            solver_progress=["INTSOL"],
            start_in_triggerer=True,
        )
    assert operator.start_from_trigger is True
    assert operator.start_in_triggerer_off is None
    args = operator.start_trigger_args
    assert args is not None
    assert (args.trigger_cls, args.next_method, args.timeout) == (
        START_CLASSPATH,
        "execute_complete",
        None,
    )
    kwargs = args.trigger_kwargs or {}
    assert kwargs["job_request"] == {"computeJobType": "{{ 'SOLVER' }}"}  # rendered there
    assert kwargs["execution_timeout_seconds"] == 300.0
    assert kwargs["progress"]["callbacks"] == ["INTSOL"]
    InsightJobStartTrigger(**kwargs)  # the kwargs build the trigger Airflow names
    serialized = _serialized_tasks(dag)["solve"]
    assert serialized["start_from_trigger"] is True
    assert serialized["start_trigger_args"]["trigger_cls"] == START_CLASSPATH


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ({"deferrable": False}, "not a deferrable task"),
        ({"deferrable": True, "wait_for_termination": False}, "not a deferrable task"),
        ({"deferrable": True, "payload": "/data/model.zip"}, "local payload path"),
        ({"deferrable": True, "job_id": "fixed-1"}, "fixed job_id"),
        ({"deferrable": True, "job_request": {"x": object()}}, "not plain JSON"),
        ({"deferrable": True, "on_execute_callback": lambda context: None}, "on_execute_callback"),
        ({"deferrable": True, "pre_execute": lambda context: None}, "pre_execute"),
    ],
)
def test_what_cannot_start_in_the_triggerer_starts_on_a_worker(
    arguments: dict[str, Any], why: str
) -> None:
    operator = InsightJobOperator(task_id="solve", start_in_triggerer=True, **arguments)
    assert operator.start_from_trigger is False
    assert operator.start_trigger_args is None
    off = operator.start_in_triggerer_off or ""
    if features.start_in_triggerer().on:
        assert why in off
    else:
        assert off == features.start_in_triggerer().why_off


@needs_feature
def test_an_object_storage_payload_is_read_in_the_triggerer() -> None:
    url = "s3://aws_default@bucket/{{ ds }}/model.zip"
    operator = InsightJobOperator(
        task_id="solve", deferrable=True, payload=url, start_in_triggerer=True
    )
    assert operator.start_from_trigger is True
    args = operator.start_trigger_args
    assert args is not None and (args.trigger_kwargs or {})["payload"] == url


def test_a_subclass_that_overrides_execute_starts_on_a_worker() -> None:
    operator = ExecuteOverridden(task_id="solve", deferrable=True, start_in_triggerer=True)
    assert operator.start_from_trigger is False
    if features.start_in_triggerer().on:
        assert "overrides execute" in (operator.start_in_triggerer_off or "")


def test_a_deferrable_task_starts_on_a_worker_unless_asked() -> None:
    """Opt-in: the default keeps the start on a worker, and says so."""
    operator = InsightJobOperator(task_id="solve", deferrable=True)
    assert operator.start_from_trigger is False
    assert operator.start_trigger_args is None
    assert operator.start_in_triggerer_off == "start_in_triggerer=False (the default)"


def test_mapped_tasks_start_on_a_worker() -> None:
    """Airflow takes a mapped task's ``start_from_trigger`` from the class, never from __init__."""
    with DAG("mapped_dag", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
        InsightJobOperator.partial(
            task_id="solve", deferrable=True, start_in_triggerer=True
        ).expand(job_request=[{"computeJobType": "SOLVER"}, {"computeJobType": "SOLVER"}])
    serialized = _serialized_tasks(dag)["solve"]
    assert not serialized.get("start_from_trigger")
    assert serialized.get("start_trigger_args") is None


@pytest.mark.skipif(
    features.start_in_triggerer().on, reason="this Airflow starts such a task in the triggerer"
)
def test_without_the_feature_a_deferrable_task_starts_on_a_worker() -> None:
    operator = InsightJobOperator(task_id="solve", deferrable=True, start_in_triggerer=True)
    assert operator.start_from_trigger is False
    assert operator.start_in_triggerer_off == features.start_in_triggerer().why_off
