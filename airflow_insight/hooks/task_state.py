"""A blocking task's kill asks its supervisor for the task instance's state, bounded in time.

The state says whether a user stopped the task (see :mod:`.kill_decision`, which decides from
it); this module only asks. The task instance's reference (its key in the answer, the question's
criteria) comes from :class:`~airflow_insight.compat.supervisor.TaskInstanceRef`, the one the
trigger uses too; the task process asks through its task instance's ``get_task_states`` (the task
SDK's public way, the same ``GetTaskStates`` request the trigger sends over its own channel).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from airflow_insight.compat.supervisor import SupervisorUnavailable, TaskInstanceRef
from airflow_insight.hooks.kill_decision import TABLE, KillDecision, for_blocking_task, normalise

#: How long a kill waits for the supervisor's answer. The supervisor escalates a user's kill to
#: SIGKILL 5 s after its SIGTERM, so the answer must leave time for the cancel itself.
TASK_STATE_TIMEOUT_SECONDS = 2.0

#: Pause between tries while dag.test()'s in-process supervisor channel is busy.
IN_PROCESS_RETRY_SECONDS = 0.05


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
    def decision(self) -> KillDecision:
        """What a blocking task's kill does, by this answer."""
        return for_blocking_task(self.state, known=self.known)

    @property
    def told(self) -> bool:
        """True when the answer named a state the kill decision's table lists."""
        return self.known and normalise(self.state) in TABLE

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
    ref = TaskInstanceRef.of(ti)
    if ref is None:
        return StateAnswer(None, False, "the task instance names no task")
    answer: list[StateAnswer] = []
    deadline = time.monotonic() + timeout_seconds

    def ask() -> None:
        while True:
            try:
                state = ref.state_in(ti.get_task_states(**ref.states_query()))
            except NameError:
                # dag.test()'s in-process supervisor removes its channel while it serves
                # another request of this process; ask again until the deadline.
                if time.monotonic() < deadline:
                    time.sleep(IN_PROCESS_RETRY_SECONDS)
                    continue
                answer.append(StateAnswer(None, False, "the supervisor channel stayed busy"))
            except SupervisorUnavailable as exc:
                answer.append(StateAnswer(None, False, str(exc)))
            except Exception as exc:  # any failure means "cannot tell", never a crash in a kill
                detail = f"asking failed: {type(exc).__name__}: {exc}"
                answer.append(StateAnswer(None, False, detail))
            else:
                answer.append(StateAnswer(state, True))
            return

    thread = threading.Thread(target=ask, name="insight-task-state", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    if not answer:
        return StateAnswer(None, False, f"no answer from the supervisor in {timeout_seconds:g} s")
    return answer[0]
