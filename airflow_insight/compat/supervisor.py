"""What a trigger asks its triggerer's supervisor: its task instance's state, Variables, XComs.

A trigger in a triggerer talks to the triggerer's supervisor process over
``task_runner.SUPERVISOR_COMMS`` (``asend``, answered by ``TriggerRunnerSupervisor
._handle_request`` through the in-process execution API): ``GetTaskStates`` for the state of its
task instance (every Airflow 3 line), ``GetVariable`` / ``PutVariable`` / ``DeleteVariable`` (every
line), ``GetVariableKeys`` (3.3 on; :func:`variable_keys` raises where it is missing) and
``SetXCom`` (every line: the task's XComs when its trigger ends it).

Every question has a time limit and any failure (no supervisor, as under ``airflow dags test``
where the inline trigger gets no task instance; the supervisor shutting down; an error answer)
raises :class:`SupervisorUnavailable`: the caller decides what "cannot tell" means. Where the
runner serves one request at a time (before 3.2.2, feature ``concurrent supervisor requests``
off), a request whose caller stops waiting is never cut off: it runs on to its answer, since a
request cancelled after its frame went out leaves that answer to the next caller ("Response read
out of order!").
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Mapping
from typing import Any

from airflow.sdk.execution_time import comms
from airflow.sdk.execution_time.comms import DeleteVariable, GetTaskStates, GetVariable, PutVariable

from airflow_insight.compat.features import concurrent_supervisor_requests

#: A supervisor that has not answered in this long is taken as not answering.
ASK_TIMEOUT_SECONDS = 5.0
#: The kill decision's question may be a trigger's first, and a supervisor's first answer can
#: take seconds (it builds its execution API client then: 6 s measured on Airflow 3.0.6 on a
#: loaded 2-core machine); it leaves half of Airflow's 30 s ``on_kill`` limit for the cancel.
TASK_STATE_TIMEOUT_SECONDS = 15.0


class SupervisorUnavailable(Exception):
    """The supervisor could not answer (absent, shutting down, or it answered with an error)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskInstanceRef:
    """The task instance a trigger serves (the triggerer sets ``trigger.task_instance``)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def of(cls, task_instance: Any) -> TaskInstanceRef | None:
        """The reference of a trigger's ``task_instance``; None when it has none."""
        if task_instance is None:
            return None
        try:
            map_index = getattr(task_instance, "map_index", -1)
            return cls(
                dag_id=str(task_instance.dag_id),
                run_id=str(task_instance.run_id),
                task_id=str(task_instance.task_id),
                map_index=-1 if map_index is None else int(map_index),
                try_number=int(getattr(task_instance, "try_number", 0) or 0),
            )
        except (AttributeError, TypeError, ValueError):
            return None

    @property
    def state_key(self) -> str:
        """The key of this task instance in a ``GetTaskStates`` answer (per run)."""
        return self.task_id if self.map_index < 0 else f"{self.task_id}_{self.map_index}"

    def states_query(self) -> dict[str, Any]:
        """The ``GetTaskStates`` criteria naming exactly this task instance."""
        return {
            "dag_id": self.dag_id,
            "run_ids": [self.run_id],
            "task_ids": [self.task_id],
            "map_index": self.map_index,
        }

    def state_in(self, task_states: Any) -> str | None:
        """This task instance's state in a ``GetTaskStates`` answer (``{run_id: {key: state}}``).

        None is "no state"; an answer that does not name this task instance raises
        :class:`SupervisorUnavailable`.
        """
        run_states = task_states.get(self.run_id) if isinstance(task_states, Mapping) else None
        if not isinstance(run_states, Mapping) or self.state_key not in run_states:
            raise SupervisorUnavailable(
                f"the supervisor knows no such task instance as {self.describe()}"
            )
        state = run_states[self.state_key]
        return None if state is None else str(getattr(state, "value", state))

    def describe(self) -> str:
        """``dag/run/task[map]`` try ``n``, for log lines."""
        index = "" if self.map_index < 0 else f"[{self.map_index}]"
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{index} try {self.try_number}"


async def ask(message: Any, timeout: float = ASK_TIMEOUT_SECONDS) -> Any:
    """Send one request to the supervisor and return its answer (None for "done")."""
    from airflow.sdk.execution_time import task_runner

    supervisor_comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    asend = getattr(supervisor_comms, "asend", None)
    if asend is None:
        raise SupervisorUnavailable("no trigger supervisor in this process")
    try:
        async with asyncio.timeout(timeout):
            if concurrent_supervisor_requests().on:
                return await asend(message)
            return await _never_cut_off(asend(message))
    except TimeoutError:
        raise SupervisorUnavailable(f"no answer within {timeout:g} s") from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # The supervisor's error answer, a broken pipe, a bad frame.
        detail = getattr(exc, "detail", None)
        shown = f"{type(exc).__name__}: {exc}" + (f" ({detail})" if detail else "")
        raise SupervisorUnavailable(shown) from exc


#: Requests left to finish after their callers stopped waiting (a reference keeps each alive).
_UNFINISHED: set[asyncio.Task[Any]] = set()


async def _never_cut_off(request: Coroutine[Any, Any, Any]) -> Any:
    """Await ``request`` in a task of its own, which a caller's timeout or cancel leaves running."""
    task = asyncio.get_running_loop().create_task(request)
    _UNFINISHED.add(task)
    task.add_done_callback(_UNFINISHED.discard)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The caller may be gone: read the outcome so an error answer is not reported as unretrieved.
    if not task.cancelled():
        task.exception()


async def task_state(ref: TaskInstanceRef, timeout: float | None = None) -> str | None:
    """The state of the task instance now (None: no state, e.g. just cleared).

    ``timeout`` defaults to :data:`TASK_STATE_TIMEOUT_SECONDS`."""
    answer = await ask(
        GetTaskStates(**ref.states_query()),
        TASK_STATE_TIMEOUT_SECONDS if timeout is None else timeout,
    )
    return ref.state_in(getattr(answer, "task_states", None))


async def variable_keys(prefix: str, timeout: float = ASK_TIMEOUT_SECONDS) -> list[str]:
    """Every Variable key that starts with ``prefix``."""
    get_keys = getattr(comms, "GetVariableKeys", None)
    if get_keys is None:
        raise SupervisorUnavailable("this Airflow cannot list Variables (no GetVariableKeys)")
    keys: list[str] = []
    while True:
        answer = await ask(get_keys(prefix=prefix, limit=1000, offset=len(keys)), timeout)
        page = list(getattr(answer, "keys", None) or [])
        keys.extend(str(key) for key in page)
        if not page or len(keys) >= int(getattr(answer, "total_entries", 0) or 0):
            return keys


async def get_variable(key: str, timeout: float = ASK_TIMEOUT_SECONDS) -> str | None:
    """The text of Variable ``key`` (None when it does not exist)."""
    answer = await ask(GetVariable(key=key), timeout)
    value = getattr(answer, "value", None)
    return value if isinstance(value, str) else None


async def put_variable(
    key: str, value: str, description: str, timeout: float = ASK_TIMEOUT_SECONDS
) -> None:
    """Create or replace Variable ``key``."""
    await ask(PutVariable(key=key, value=value, description=description), timeout)


async def delete_variable(key: str, timeout: float = ASK_TIMEOUT_SECONDS) -> None:
    """Delete Variable ``key`` (a missing one is no error)."""
    await ask(DeleteVariable(key=key), timeout)


async def set_xcom(
    ref: TaskInstanceRef, key: str, value: Any, timeout: float = ASK_TIMEOUT_SECONDS
) -> None:
    """Push an XCom of ``ref``'s task instance the way its worker would: the configured XCom
    backend's ``serialize_value`` (in a thread: a backend may write to storage), then
    ``SetXCom`` through the supervisor to the execution API.

    Not ``TaskSuccessEvent(xcoms=...)``: Airflow stores those with ``XComModel.set``, which
    JSON-encodes the value once more than the execution API does, and a downstream task then
    reads a JSON string instead of the dict (seen with the real components on Airflow 3.3.2).
    """
    from airflow.sdk.execution_time.comms import SetXCom
    from airflow.sdk.execution_time.xcom import XCom

    where: dict[str, Any] = {
        "key": key,
        "dag_id": ref.dag_id,
        "run_id": ref.run_id,
        "task_id": ref.task_id,
        "map_index": ref.map_index,
    }
    stored = await asyncio.to_thread(lambda: XCom.serialize_value(value=value, **where))
    await ask(SetXCom(value=stored, **where), timeout)
