"""Was the deferred task really stopped by a user? The trigger's ``on_kill`` decision, pure.

Why ``on_kill`` cannot be trusted by itself (Airflow 3.3.2,
``airflow/jobs/triggerer_job_runner.py``): ``TriggerRunnerSupervisor.update_triggers`` queues
for cancelling every trigger that runs in the runner but is no longer among the ids the
triggerer loaded from the DB (``cancel_trigger_ids = self.running_triggers -
requested_trigger_ids``); ``TriggerRunner.cancel_triggers`` cancels each with
``_USER_ACTION_CANCEL_MSG``; and ``run_trigger`` invokes ``trigger.on_kill()`` for that message
alone. The set also shrinks when the triggerer's process group gets SIGTERM (a deploy under
dumb-init or systemd) and when a triggerer that stalled recovers after its triggers were
reassigned (apache/airflow PR #73454). In all of those the task instance is still ``deferred``
in the metadata DB: only a user's action (mark failed, mark success, clear) or the scheduler ends
a deferral without the trigger's event.

So ``on_kill`` asks the supervisor for the task instance's state (``GetTaskStates``) and reads
the stored watermarks (each records the try and the job that wrote it, see :mod:`.watermark`),
and
:func:`decide` turns the answers into a :class:`KillDecision`. A "cancel" is then still skipped
when the job already ended on the server (another triggerer may have seen it finish: a
``DELETE`` would delete its results).
"""

from __future__ import annotations

import dataclasses
import enum

from airflow_insight.triggers.watermark import Watermark

#: Ended by Airflow itself with the next try to come: that try re-attaches to the job.
_AIRFLOW_RETRIES = frozenset({"up_for_retry", "up_for_reschedule"})


class KillAction(enum.Enum):
    """What ``on_kill`` does with the remote job."""

    CANCEL = "cancel"
    LEAVE_RUNNING = "leave running"


@dataclasses.dataclass(frozen=True, slots=True)
class KillDecision:
    """An action and the reason the log gives for it."""

    action: KillAction
    reason: str


def decide(
    state: str | None, stored: Watermark | None, *, try_number: int, compute_job_id: str
) -> KillDecision:
    """Decide from the task instance's ``state`` and the stored watermark record.

    * ``deferred``: the task still waits for a trigger: this one, moved to another triggerer or
      restarting (a deploy, a crash, a reassignment): leave the job running. Unless the
      watermark shows a *later* try of the task deferred on a *different* job (the task was
      cleared and ran again): this trigger is no longer the task's, its job is orphaned: cancel.
    * ``up_for_retry`` / ``up_for_reschedule``: Airflow ended the try, not a user; the next try
      re-attaches to the job: leave it running.
    * anything else (``failed``, ``success``, ``skipped``, no state after a clear, or already
      ``scheduled``/``queued``/``running`` again after one): the deferral ended without this
      trigger's event: a user's decision: cancel.
    """
    if state == "deferred":
        if (
            stored is not None
            and stored.try_number > try_number
            and stored.compute_job_id != compute_job_id
        ):
            return KillDecision(
                KillAction.CANCEL,
                f"the task was cleared and its try {stored.try_number} now follows job "
                f"{stored.compute_job_id}",
            )
        return KillDecision(
            KillAction.LEAVE_RUNNING,
            "the task is still deferred (a triggerer stopped or the trigger moved to another"
            " triggerer), so this was not a user's decision",
        )
    if state in _AIRFLOW_RETRIES:
        return KillDecision(
            KillAction.LEAVE_RUNNING,
            f"the task is {state}: Airflow ended the try and the next one re-attaches",
        )
    shown = "no state (cleared)" if state is None else state
    return KillDecision(KillAction.CANCEL, f"the task was stopped by a user (now {shown})")
