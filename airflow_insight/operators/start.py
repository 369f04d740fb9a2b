"""Whether a deferrable :class:`~airflow_insight.operators.insight.InsightJobOperator` starts in the
triggerer, and the ``StartTriggerArgs`` that make Airflow start it there.

Only where the operator asks for it (``start_in_triggerer=True``: see ``docs/design.md`` for the
triggerer deadlock that keeps it opt-in). Decided once, when the DAG file builds the operator:
Airflow serializes ``start_from_trigger`` and ``start_trigger_args`` with the DAG, and the
scheduler defers the task from them without running any of our code. Where the start cannot
move, the task starts on a worker, submits and defers; the reasons (read in Airflow's source, see
``docs/design.md``):

* feature ``start in triggerer`` off (the scheduler or the triggerer of this Airflow lacks it);
* not deferrable, or ``wait_for_termination=False`` (there is nothing to follow);
* a local ``payload`` path: it names a file on a worker's disk, not the triggerer's (an
  object-storage URL is read by the trigger);
* a subclass that overrides ``execute`` (the start in the triggerer never calls it), or an
  ``on_execute_callback`` or ``pre_execute`` (Airflow runs them only where a worker starts a task);
* a fixed ``job_id``: a trigger rebuilt on another triggerer could not tell its own finished job
  from an earlier run's, which it would delete and submit again;
* a ``job_request`` that is not plain JSON (an ``XComArg``, say): the trigger kwargs are stored as
  JSON, and only Jinja strings in them are rendered by the triggerer.

Mapped tasks (``.partial().expand()``) never run ``__init__`` at parse time: Airflow takes
``start_from_trigger`` from the class, which keeps it False, so they start on a worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_insight.compat import features
from airflow_insight.compat.sdk import StartTriggerArgs
from airflow_insight.storage import is_object_storage_url
from airflow_insight.triggers.start import START_CLASSPATH, start_kwargs

#: The operator's method the task resumes in on a worker after the start trigger's event.
NEXT_METHOD = "execute_complete"


def why_not_in_triggerer(
    *,
    asked: bool,
    deferrable: bool,
    wait_for_termination: bool,
    payload: object,
    job_id: str | None,
    job_request: Mapping[str, Any] | None,
    execute_overridden: bool = False,
    start_hooks: bool = False,
) -> str | None:
    """Why the task does not start in the triggerer (None: it does)."""
    if not asked:
        # Opt-in: on 3.3.2 a triggerer deadlocked with many such tasks of one DAG (its supervisor
        # blocked sending their serialized DAGs while the trigger runner blocked logging to it).
        return "start_in_triggerer=False (the default)"
    feature = features.start_in_triggerer()
    if not feature.on:
        return feature.why_off
    if not deferrable or not wait_for_termination:
        return "not a deferrable task that follows its job"
    if payload is not None and not is_object_storage_url(payload):
        return "a local payload path is read on a worker's disk"
    if job_id:
        return "a fixed job_id"
    if execute_overridden:
        return "a subclass overrides execute, which a start in the triggerer would skip"
    if start_hooks:
        return "an on_execute_callback or pre_execute runs only where a worker starts the task"
    try:
        json.dumps(job_request)
    except (TypeError, ValueError):
        return "job_request is not plain JSON"
    return None


def start_trigger_args(
    *,
    insight_conn_id: str,
    job_request: Mapping[str, Any] | None,
    payload: str | None,
    results_path: str | None,
    solution_path: str | None,
    progress_plot_path: str | None,
    accepted_model_statuses: list[str] | None,
    silence_limit_seconds: float,
    unreachable_limit_seconds: float | None,
    execution_timeout_seconds: float | None,
    progress: Mapping[str, Any] | None,
    end: Mapping[str, Any] | None,
) -> Any:
    """Airflow's ``StartTriggerArgs`` for the start trigger (in :mod:`..triggers.start`).

    No trigger timeout: the trigger cancels the job at ``execution_timeout`` itself (Airflow also
    times the deferral out at ``execution_timeout``, ``TaskInstance.defer_task``).
    """
    return StartTriggerArgs(
        trigger_cls=START_CLASSPATH,
        next_method=NEXT_METHOD,
        trigger_kwargs=start_kwargs(
            insight_conn_id=insight_conn_id,
            job_request=job_request,
            payload=payload,
            results_path=results_path,
            solution_path=solution_path,
            progress_plot_path=progress_plot_path,
            accepted_model_statuses=accepted_model_statuses,
            silence_limit_seconds=silence_limit_seconds,
            unreachable_limit_seconds=unreachable_limit_seconds,
            execution_timeout_seconds=execution_timeout_seconds,
            progress=progress,
            end=end,
        ),
        next_kwargs=None,
        timeout=None,
    )
