"""Was a running task instance stopped by a user? Asked of Airflow before a kill cancels a job.

Airflow 3.3 delivers very different events to a running task as the same ``SIGTERM`` (and so the
same ``on_kill``): a user marking the task failed or success or clearing it (the supervisor's
heartbeat gets 409 and sends ``SIGTERM``, escalating to ``SIGKILL`` after 5 s), and a worker being
stopped by a deploy (the supervisor forwards its own ``SIGTERM`` to the task, or the whole process
group gets it). Only the first is a user's decision. Whoever killed the task, the task can ask its
supervisor for the task instance's state in the metadata DB (``GetTaskStates``, behind
``RuntimeTaskInstance.get_task_states``): after a user's action it is no longer ``running``;
after a deploy's signal it still is.

:func:`stop_verdict` is the pure decision from that state; :func:`current_task_state` asks the
supervisor, bounded in time, and answers None when it cannot tell.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

#: How long a kill waits for the supervisor's answer. The supervisor escalates a user's kill to
#: SIGKILL 5 s after its SIGTERM, so the answer must leave time for the cancel itself.
TASK_STATE_TIMEOUT_SECONDS = 2.0

#: Pause between tries while dag.test()'s in-process supervisor channel is busy.
IN_PROCESS_RETRY_SECONDS = 0.05

#: States only a user's action (or a timeout Airflow enforces, e.g. a DAG run's) gives a task
#: instance whose process still runs: mark success / failed / skipped, clear (``restarting``).
USER_STOP_STATES = frozenset(
    {"success", "failed", "skipped", "restarting", "removed", "upstream_failed"}
)
#: States that say the task is still Airflow's to run: still ``running`` (a deploy's signal), or
#: already taken over by Airflow itself (``up_for_retry`` after a heartbeat timeout, a newer try
#: queued or running elsewhere, ``None`` after the scheduler reset an orphaned task). A newer try
#: re-attaches to the job, so cancelling it would cost the run.
AIRFLOW_OWNED_STATES = frozenset(
    {
        "running",
        "queued",
        "scheduled",
        "up_for_retry",
        "up_for_reschedule",
        "deferred",
        "awaiting_input",
        "none",
    }
)


class StopVerdict(enum.StrEnum):
    """What a kill should do with the remote job, by the task instance's state."""

    #: A user stopped the task: cancel the job.
    USER_STOPPED = "user stopped"
    #: The task is still running or Airflow runs it again: leave the job for it.
    STILL_OWNED = "still owned"
    #: The state could not be read or is unknown: leave the job (never cancel on a guess).
    UNKNOWN = "unknown"

    @property
    def cancels(self) -> bool:
        """True when the job should be cancelled."""
        return self is StopVerdict.USER_STOPPED


def stop_verdict(state: str | None, *, known: bool = True) -> StopVerdict:
    """The verdict for a task instance ``state`` (``known=False``: the state could not be read)."""
    if not known:
        return StopVerdict.UNKNOWN
    name = "none" if state is None else state.lower()
    if name in USER_STOP_STATES:
        return StopVerdict.USER_STOPPED
    if name in AIRFLOW_OWNED_STATES:
        return StopVerdict.STILL_OWNED
    return StopVerdict.UNKNOWN


class TaskInstanceLike(Protocol):
    """The parts of Airflow's ``RuntimeTaskInstance`` this module uses."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int | None

    def get_task_states(
        self,
        dag_id: str,
        map_index: int | None = None,
        task_ids: list[str] | None = None,
        task_group_id: str | None = None,
        logical_dates: Any = None,
        run_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """``{run_id: {task key: state}}`` from the supervisor."""


class StateAnswer:
    """The supervisor's answer: ``known`` False when none came (in time) or it named no state."""

    def __init__(self, state: str | None, known: bool, detail: str = "") -> None:
        self.state = state
        self.known = known
        self.detail = detail

    @property
    def verdict(self) -> StopVerdict:
        """The :func:`stop_verdict` of this answer."""
        return stop_verdict(self.state, known=self.known)

    def describe(self) -> str:
        """``state 'failed'`` or why the state is not known, for log messages."""
        if self.known:
            return f"state {self.state or 'none'!r}"
        return f"state unknown ({self.detail})"


def current_task_state(
    ti: TaskInstanceLike, timeout_seconds: float = TASK_STATE_TIMEOUT_SECONDS
) -> StateAnswer:
    """Ask the supervisor for ``ti``'s state now, waiting at most ``timeout_seconds``.

    The question runs on a thread of its own: a kill runs in the signal handler on the thread it
    interrupted, which may be inside another request to the supervisor holding the channel's
    (non-reentrant) lock; asking on that thread would deadlock. A timed-out thread is a daemon
    and finishes (or not) on its own.
    """
    answer: list[StateAnswer] = []
    deadline = time.monotonic() + timeout_seconds

    def ask() -> None:
        while True:
            try:
                states = ti.get_task_states(
                    dag_id=ti.dag_id,
                    map_index=-1 if ti.map_index is None else ti.map_index,
                    task_ids=[ti.task_id],
                    run_ids=[ti.run_id],
                )
            except NameError:
                # dag.test()'s in-process supervisor removes its channel while it serves
                # another request of this process; ask again until the deadline.
                if time.monotonic() < deadline:
                    time.sleep(IN_PROCESS_RETRY_SECONDS)
                    continue
                answer.append(StateAnswer(None, False, "the supervisor channel stayed busy"))
            except Exception as exc:  # any failure means "cannot tell", never a crash in a kill
                detail = f"asking failed: {type(exc).__name__}: {exc}"
                answer.append(StateAnswer(None, False, detail))
            else:
                answer.append(_state_of(ti, states))
            return

    thread = threading.Thread(target=ask, name="insight-task-state", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    if not answer:
        return StateAnswer(None, False, f"no answer from the supervisor in {timeout_seconds:g} s")
    return answer[0]


def _state_of(ti: TaskInstanceLike, states: Mapping[str, Any]) -> StateAnswer:
    by_task = states.get(ti.run_id)
    if not isinstance(by_task, Mapping):
        return StateAnswer(None, False, "the supervisor knows no such task instance")
    map_index = -1 if ti.map_index is None else ti.map_index
    key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
    if key not in by_task:
        return StateAnswer(None, False, "the supervisor knows no such task instance")
    state = by_task[key]
    value = getattr(state, "value", state)  # a TaskInstanceState enum or its string
    return StateAnswer(None if value is None else str(value), True)
