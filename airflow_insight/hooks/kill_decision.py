"""One kill decision for both places a task can be stopped: a blocking task and a deferred trigger.

Airflow delivers a user's action (mark failed or success, clear) and a deploy's or a move's
stop in the same way: a blocking task gets ``SIGTERM`` (its ``on_kill``), a deferred task's
trigger is cancelled (the trigger's ``on_kill``). Both then ask the supervisor for the task
instance's state in the metadata DB, and :data:`TABLE` says what that state means: one row per
state (normalised once by :func:`normalise`), one cell per place, each an action with its
reason. Where the two cells differ the row says why: the same state means something else for a
task whose process still runs than for one that waits for a trigger.

Never cancel on a guess: a question the supervisor did not answer leaves the job in both places.
Plain Python; the adapters ask and log. See ``docs/design.md#one-kill-decision``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping


class KillAction(enum.Enum):
    """What a kill does with the remote job."""

    CANCEL = "cancel"
    LEAVE_RUNNING = "leave running"


@dataclasses.dataclass(frozen=True, slots=True)
class KillDecision:
    """An action and the reason the log gives for it."""

    action: KillAction
    reason: str

    @property
    def cancels(self) -> bool:
        """True when the job is to be cancelled."""
        return self.action is KillAction.CANCEL


def _cancel(reason: str) -> KillDecision:
    return KillDecision(KillAction.CANCEL, reason)


def _leave(reason: str) -> KillDecision:
    return KillDecision(KillAction.LEAVE_RUNNING, reason)


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """What one task-instance state means for a blocking task and for a deferred trigger."""

    blocking: KillDecision
    deferred: KillDecision
    #: Why the two cells differ (empty when they agree).
    why_they_differ: str = ""


#: The row of a task instance without a state.
NO_STATE = "none"
#: The row of a state this table does not list (a newer Airflow's).
UNLISTED = "(unlisted state)"
#: The row used when the supervisor did not answer (or named no such task instance).
UNANSWERED = "(no answer)"

_USER_MARKED = _cancel(
    "the task instance is now {state} while its job runs: a user's action (or a limit Airflow"
    " enforces, such as a DAG run's timeout) ended it"
)
_AIRFLOW_RETRIES = _leave("the task is {state}: Airflow ended the try and the next one re-attaches")
_RUNNING_AGAIN = _cancel(
    "the deferral ended without this trigger's event, which only a user's clear does; the task is"
    " already {state} again"
)
_NEWER_TRY = _leave(
    "the task instance is still Airflow's ({state}): a newer try is on its way and re-attaches"
)
_NOT_HOW_A_CLEAR_LOOKS = (
    "clearing a running task sets it to restarting, so for a running task this state is Airflow's"
    " own doing; clearing a deferred task sets no state, and only a clear moves a deferred task"
    " on without its trigger's event"
)

#: The task instance's state (as :func:`normalise` gives it) -> what a kill does, in each place.
TABLE: Mapping[str, Row] = {
    "running": Row(
        _leave(
            "the task instance is still running in Airflow: this stop is a worker shutdown or"
            " restart, not a user's decision"
        ),
        _RUNNING_AGAIN,
        "a blocking task's own process is what runs, so a kill while it is still running is a"
        " deploy's; a deferred task runs again only after its trigger's event or a user's clear,"
        " and this trigger sent no event",
    ),
    "deferred": Row(
        _leave(
            "the task instance is still Airflow's (deferred): a newer try is on its way and"
            " re-attaches"
        ),
        _leave(
            "the task is still deferred (a triggerer stopped or the trigger moved to another"
            " triggerer), so this was not a user's decision"
        ),
    ),
    NO_STATE: Row(
        _leave(
            "the task instance is still Airflow's (no state: the scheduler reset it as orphaned);"
            " the next try re-attaches"
        ),
        _cancel("the task was stopped by a user (now no state: cleared)"),
        _NOT_HOW_A_CLEAR_LOOKS,
    ),
    "scheduled": Row(_NEWER_TRY, _RUNNING_AGAIN, _NOT_HOW_A_CLEAR_LOOKS),
    "queued": Row(_NEWER_TRY, _RUNNING_AGAIN, _NOT_HOW_A_CLEAR_LOOKS),
    "awaiting_input": Row(_NEWER_TRY, _RUNNING_AGAIN, _NOT_HOW_A_CLEAR_LOOKS),
    "up_for_retry": Row(_AIRFLOW_RETRIES, _AIRFLOW_RETRIES),
    "up_for_reschedule": Row(_AIRFLOW_RETRIES, _AIRFLOW_RETRIES),
    "success": Row(_USER_MARKED, _USER_MARKED),
    "failed": Row(_USER_MARKED, _USER_MARKED),
    "skipped": Row(_USER_MARKED, _USER_MARKED),
    "upstream_failed": Row(_USER_MARKED, _USER_MARKED),
    "removed": Row(_USER_MARKED, _USER_MARKED),
    "restarting": Row(
        _cancel("a user cleared the task while it ran (now restarting)"),
        _cancel("a user cleared the task (now restarting)"),
    ),
    UNLISTED: Row(
        _leave("cannot tell whether a user stopped the task (a state this provider does not know)"),
        _cancel("the task is no longer deferred and this trigger sent no event (now {state})"),
        "a running task is killed by deploys far more often than by users, so an unknown state"
        " is no proof; a task that left its deferral without its trigger's event can only have"
        " been moved on by a user or the scheduler, whatever it is called now",
    ),
    UNANSWERED: Row(
        _leave("cannot tell whether a user stopped the task"),
        _leave("cannot tell whether a user stopped the task"),
    ),
}


def normalise(state: object) -> str:
    """The table's key of ``state`` as Airflow reports it: a string, an enum, or None."""
    if state is None:
        return NO_STATE
    value = getattr(state, "value", state)  # a TaskInstanceState enum or its string
    return str(value).strip().lower()


def row_of(state: object) -> Row:
    """The row of ``state`` (:data:`UNLISTED` for a state the table does not list)."""
    return TABLE.get(normalise(state), TABLE[UNLISTED])


def _shown(decision: KillDecision, state: object) -> KillDecision:
    name = normalise(state)
    return dataclasses.replace(decision, reason=decision.reason.format(state=name))


def for_blocking_task(state: object, *, known: bool = True) -> KillDecision:
    """The decision for a blocking task killed while ``state`` (``known=False``: not read)."""
    if not known:
        return TABLE[UNANSWERED].blocking
    return _shown(row_of(state).blocking, state)


def for_deferred_trigger(
    state: object,
    *,
    try_number: int,
    compute_job_id: str,
    latest: tuple[int, str] | None = None,
) -> KillDecision:
    """The decision for a deferred task's trigger cancelled while ``state``.

    ``latest`` is ``(try number, job id)`` of the latest try that stored a watermark for the task
    instance. A still-deferred task whose *later* try follows a *different* job was cleared and
    deferred again: this trigger is no longer the task's, its job is orphaned, so it is cancelled.
    """
    name = normalise(state)
    if name == "deferred" and latest is not None:
        later_try, later_job = latest
        if later_try > try_number and later_job != compute_job_id:
            return _cancel(
                f"the task was cleared and its try {later_try} now follows job {later_job}"
            )
    return _shown(row_of(state).deferred, state)
