"""Airflow's public authoring names, one import for every Airflow 3 line.

The names come from ``airflow.providers.common.compat.sdk`` (and its ``connection`` module),
which tries each name's Airflow 3 home first and falls back to where older lines keep it
(``BaseHook`` is in ``airflow.sdk`` only since 3.1, ``conf`` since 3.2); type checkers see the
newest line's ``airflow.sdk`` through it.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowNotFoundException,
    AirflowTaskTimeout,
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    Connection,
    Context,
    PokeReturnValue,
    TaskDeferred,
    TaskInstanceKey,
    XCom,
    conf,
)
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TriggerEvent


async def get_async_connection(conn_id: str) -> Connection:
    """The connection ``conn_id``, read without blocking the event loop, on every line.

    ``BaseHook.aget_connection`` is missing before 3.1 and, before 3.3.2, masks secrets with a
    blocking supervisor call that deadlocks next to another request in flight: common-compat
    reads the connection in a thread there.
    """
    from airflow.providers.common.compat.connection import get_async_connection as get

    return await get(conn_id)


def object_storage_path(url: str) -> Any:
    """Airflow's ``ObjectStoragePath`` for ``url`` (``s3://conn_id@bucket/key``, ``file://...``)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def task_success_event() -> TriggerEvent:
    """Airflow's end event that marks a deferred task successful from the triggerer (no worker
    resumes it). Check ``features.end_in_triggerer`` before yielding it; push the task's XComs
    first (``supervisor.set_xcom``: the event's own ``xcoms`` are stored JSON-encoded twice)."""
    from airflow.triggers.base import TaskSuccessEvent

    return TaskSuccessEvent()


def airflow_version() -> str:
    """The installed Airflow's version string."""
    from airflow import __version__

    return str(__version__)


def openlineage_operator_lineage() -> type | None:
    """OpenLineage's ``OperatorLineage`` class, or None where its provider is not installed."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return OperatorLineage  # type: ignore[no-any-return, unused-ignore]


__all__ = [
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowTaskTimeout",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "PokeReturnValue",
    "StartTriggerArgs",
    "TaskDeferred",
    "TaskInstanceKey",
    "TriggerEvent",
    "XCom",
    "airflow_version",
    "conf",
    "get_async_connection",
    "object_storage_path",
    "openlineage_operator_lineage",
    "task_success_event",
]
