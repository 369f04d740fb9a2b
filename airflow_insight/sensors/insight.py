"""The sensor that waits for an Insight compute job submitted elsewhere.

:class:`InsightJobSensor` takes a (templated) ``compute_job_id``, e.g. pulled from an XCom, and
waits for that job's end in ``poke``, ``reschedule`` or deferrable mode. It ends per §A7: success
returns the same result dict as ``InsightJobOperator`` (the XCom ``return_value``); a failed,
cancelled or model-failed job raises :class:`~airflow_insight.exceptions.JobFailed`; an error a
retry cannot fix raises ``AirflowFailException``.

Decisions:

* The sensor does not own the job, so by default it never cancels it: ``cancel_on_kill`` defaults
  to False, and the deferrable sensor hands no ``end_by`` to the trigger. Its own ``timeout``
  becomes the defer timeout, which fails the task (``AirflowSensorTimeout``) without cancelling.
* Poke and reschedule modes read the job over REST once per poke; a 404 means "not there (yet)"
  and a transient REST error means "try at the next poke". In poke mode, pokes that all fail to
  reach the server for ``unreachable_limit_seconds`` (default: the connection's) fail the task
  with the retryable :class:`~airflow_insight.exceptions.ServerUnreachable`, by the core's one
  rule (``docs/design.md#the-unreachable-timer``); reschedule mode bounds a dead server by its
  sensor ``timeout``. The run log is forwarded into the task log once, at the end (a
  rescheduled sensor is a new instance each poke and would repeat it).
  Deferrable mode streams it live from the triggerer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_insight.compat.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow_insight.exceptions import InsightError, JobNotFound
from airflow_insight.hooks.insight import InsightHook, airflow_error
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.statuses import is_terminal
from airflow_insight.protocol.unreachable import UnreachableTimer
from airflow_insight.triggers.end import EndPlan, resume_reason
from airflow_insight.triggers.insight import InsightJobTrigger, trigger_kwargs, warn_if_log_unread
from airflow_insight.triggers.payload import TriggerPayload

if TYPE_CHECKING:
    from airflow_insight.compat.sdk import Context


class InsightJobSensor(BaseSensorOperator):
    """Wait for an Insight compute job to end; return its result dict or fail as it failed.

    :param compute_job_id: the job to wait for (templated).
    :param insight_conn_id: the Airflow connection of type ``insight``.
    :param accepted_model_statuses: model statuses counted as success at ``COMPLETED``; default:
        the connection's ``accepted_model_statuses`` extra (itself defaulting to ``{"OK"}``).
    :param silence_limit_seconds: deferrable mode: check the job over REST when nothing was heard
        for this long.
    :param unreachable_limit_seconds: deferrable and poke modes: fail (retryably) when the server
        has not answered at all for this long; None: the connection's
        ``unreachable_limit_seconds``.
    :param deferrable: wait in the triggerer instead of poking.
    :param cancel_on_kill: deferrable mode: cancel the job when a user marks the task failed or
        success, or clears it (default False: the job belongs to someone else).
    :param resume_on_worker: deferrable mode: resume on a worker (``execute_complete``) to end
        a successful wait. Default False: the triggerer ends the task itself with the same
        ``return_value``, unless a subclass has its own ``execute_complete``, the task has an
        ``on_success_callback`` (Airflow drops it for a task its trigger ended) or the
        OpenLineage provider is installed (its task events come from the worker).
    """

    template_fields: Sequence[str] = ("compute_job_id",)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        compute_job_id: str,
        insight_conn_id: str = InsightHook.default_conn_name,
        accepted_model_statuses: Sequence[str] | None = None,
        silence_limit_seconds: float = 60.0,
        unreachable_limit_seconds: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = False,
        resume_on_worker: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.compute_job_id = compute_job_id
        self.insight_conn_id = insight_conn_id
        self.accepted_model_statuses = (
            None if accepted_model_statuses is None else list(accepted_model_statuses)
        )
        self.silence_limit_seconds = silence_limit_seconds
        self.unreachable_limit_seconds = unreachable_limit_seconds
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.resume_on_worker = resume_on_worker
        self._hook: InsightHook | None = None
        #: Poke mode: how long the pokes have failed to reach the server (made at the first).
        self._unreachable: UnreachableTimer | None = None

    @property
    def hook(self) -> InsightHook:
        """The hook of ``insight_conn_id`` (one per sensor instance)."""
        if self._hook is None:
            self._hook = InsightHook(self.insight_conn_id)
        return self._hook

    def trigger_kwargs(self) -> dict[str, Any]:
        """The deferrable sensor's trigger kwargs, built by the triggers module's one helper."""
        return trigger_kwargs(
            insight_conn_id=self.insight_conn_id,
            compute_job_id=self.compute_job_id,
            accepted_model_statuses=self.accepted_model_statuses,
            silence_limit_seconds=self.silence_limit_seconds,
            end_by=None,
            cancel_on_kill=self.cancel_on_kill,
            unreachable_limit_seconds=self.unreachable_limit_seconds,
            end=self._end_plan(),
        )

    def _end_plan(self) -> dict[str, Any] | None:
        """The trigger ends a successful wait itself (nothing in it needs a worker), unless
        :func:`~airflow_insight.triggers.end.resume_reason` says otherwise (logged)."""
        why = resume_reason(self, InsightJobSensor, self.resume_on_worker)
        if why is not None:
            self.log.info("The task resumes on a worker when the job ends: %s", why)
            return None
        return EndPlan().to_json()

    def execute(self, context: Context) -> Any:
        """Poke (poke/reschedule modes) or defer to the trigger (deferrable)."""
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=InsightJobTrigger(**self.trigger_kwargs()),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One REST look at the job: done (with the result) or not yet."""
        try:
            document = self.hook.get_job(self.compute_job_id)
        except JobNotFound:
            self._answered()
            self.log.info("Insight compute job %s not found (yet)", self.compute_job_id)
            return False
        except InsightError as exc:
            if exc.permanent:
                raise airflow_error(exc) from exc
            self._check_reachable(exc)
            return False
        self._answered()
        outcome = JobOutcome.from_job_document(self.compute_job_id, document)
        if not is_terminal(outcome.status):
            self.log.info("Insight compute job %s: status %s", self.compute_job_id, outcome.status)
            return False
        self._forward_rest_log(outcome, -1)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(outcome))

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Resume after the trigger's event: fill the log from REST (unless the trigger forwarded
        all of it, see ``InsightHook.run_log_after``), end like a poke."""
        try:
            payload = TriggerPayload.from_dict(event)
            warn_if_log_unread(payload, self.log)
            outcome = payload.result()
        except InsightError as exc:
            raise airflow_error(exc) from exc
        self._forward_rest_log(outcome, payload.last_run_log_line)
        return self._finish(outcome)

    # ----------------------------------------------------------------------------- internals

    def _check_reachable(self, exc: InsightError) -> None:
        """Say the outage (one line per failed poke: pokes are ``poke_interval`` apart) or raise
        :class:`ServerUnreachable` once pokes failed for the limit (retryable)."""
        timer, now = self._timer(), time.monotonic()
        outage = timer.unanswered(now, str(exc))
        if timer.expired(now):
            raise timer.give_up(now, self.compute_job_id, str(exc)) from exc
        self.log.warning(outage.describe_at(time.time()))

    def _answered(self) -> None:
        """The server answered a poke: an outage under way ends, said once."""
        back = None if self._unreachable is None else self._unreachable.answered(time.monotonic())
        if back is not None:
            self.log.info(back.describe())

    def _timer(self) -> UnreachableTimer:
        """The poke mode's outage timer (the core's rule, as the follower's), made once."""
        if self._unreachable is None:
            self._unreachable = self.hook.unreachable_timer(self.unreachable_limit_seconds)
        return self._unreachable

    def _finish(self, outcome: JobOutcome) -> dict[str, Any]:
        """The outcome as the operator's result dict, or the job's failure raised (the hook's one
        end path, shared with the operator)."""
        return self.hook.job_end(outcome, self.accepted_model_statuses, self.log)

    def _forward_rest_log(self, outcome: JobOutcome, last_forwarded: int) -> None:
        """Forward the run-log lines after ``last_forwarded``, one record per line."""
        self.hook.forward_run_log_after(outcome, last_forwarded)
