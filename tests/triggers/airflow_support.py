"""A real metadata DB (SQLite) and a real execution API for the trigger's questions.

The triggerer's supervisor answers a trigger's requests with the request handlers of
``airflow.sdk.execution_time.request_handlers`` and an execution-API client
(``TriggerRunnerSupervisor._handle_request``). :class:`InProcessSupervisorComms` does the same
in-process, with the same handlers, client (``InProcessTestSupervisor._api_client()``: the
in-process execution API) and SQLite DB: only the socket between the two triggerer processes is
left out (tests/distributed runs a real triggerer).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import types
from pathlib import Path
from typing import Any

DAG_ID = "h2a_trigger_state"
TASK_ID = "follow"
_DAG_SOURCE = f'''
from airflow.sdk import DAG, BaseOperator


class Noop(BaseOperator):
    def execute(self, context):
        pass


with DAG("{DAG_ID}", schedule=None):
    Noop(task_id="{TASK_ID}")
'''
_RUNS = itertools.count(1)
_synced = False


def migrate_and_sync() -> None:
    """Migrate the scratch DB (idempotent) and write the test DAG into it once."""
    global _synced
    if _synced:
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.db import initdb
    from airflow.utils.session import create_session

    initdb()
    folder = Path(tempfile.mkdtemp(prefix="h2a-dags-"))
    (folder / "trigger_state_dag.py").write_text(_DAG_SOURCE)
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=str(folder), bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)
    _synced = True


def new_task_instance(state: str | None = "deferred", try_number: int = 1) -> Any:
    """A fresh DAG run's task instance in ``state``; returns what a trigger's
    ``task_instance`` offers (dag_id, run_id, task_id, map_index, try_number)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    migrate_and_sync()
    run_id = f"run-{next(_RUNS)}-{timezone.utcnow().timestamp()}"
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
        now = timezone.utcnow()
        run = get_or_create_dagrun(
            dag=dag,
            run_id=run_id,
            logical_date=None,
            data_interval=None,
            run_after=now,
            start_date=now,
            conf=None,
            triggered_by=DagRunTriggeredByType.TEST,
            triggering_user_name="h2a-tests",
            session=session,
        )
        (ti,) = run.get_task_instances(session=session)
        ti.state = state
        ti.try_number = try_number
    return types.SimpleNamespace(
        dag_id=DAG_ID, run_id=run_id, task_id=TASK_ID, map_index=-1, try_number=try_number
    )


def set_state(task_instance: Any, state: str | None) -> None:
    """What a user's "mark failed" / "clear" does to the row (the UI goes through the same)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.run_id == task_instance.run_id)
            .values(state=state)
        )


class InProcessSupervisorComms:
    """``SUPERVISOR_COMMS`` for a trigger: the triggerer supervisor's handlers, in-process."""

    def __init__(self) -> None:
        from airflow.sdk.execution_time import comms
        from airflow.sdk.execution_time import request_handlers as rh
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

        self.client = InProcessTestSupervisor._api_client()
        self._handlers = {
            comms.GetTaskStates: rh.handle_get_task_states,
            comms.GetVariable: rh.handle_get_variable,
            comms.GetVariableKeys: rh.handle_get_variable_keys,
            comms.PutVariable: rh.handle_put_variable,
            comms.DeleteVariable: rh.handle_delete_variable,
            comms.SetXCom: rh.handle_set_xcom,
            comms.GetXCom: rh.handle_get_xcom,
        }
        self._mask_secret = comms.MaskSecret
        self.requests: list[Any] = []

    async def asend(self, message: Any) -> Any:
        from airflow.sdk.execution_time.supervisor import set_supervisor_comms

        self.requests.append(message)
        if isinstance(message, self._mask_secret):
            return None  # The supervisor's masker is this process's: nothing to do here.
        # As the supervisor process does: the server side must not see a task's comms (its
        # Variable code would send the request back here), so they are unset meanwhile.
        with set_supervisor_comms(None):
            answer, _ = self._handlers[type(message)](self.client, message)
        return answer

    def variable(self, key: str) -> str | None:
        """Read a Variable straight from the DB (what the next triggerer would find)."""
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.query(Variable).filter(Variable.key == key).one_or_none()
            return None if row is None else str(row.val)

    def watermark_keys(self) -> list[str]:
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.query(Variable.key).filter(Variable.key.like("insight_run_log%"))
            return [row[0] for row in rows]


class SilentSupervisorComms:
    """A supervisor that never answers the trigger's questions (the triggerer shutting down)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def asend(self, message: Any) -> Any:
        self.requests.append(message)
        if type(message).__name__ == "MaskSecret":  # sent by aget_connection itself
            return None
        await asyncio.Event().wait()
