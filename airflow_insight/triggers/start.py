"""The trigger that starts a deferrable task's job in the triggerer, so no worker runs its start.

Airflow defers a task whose operator has ``start_from_trigger`` straight from the scheduler
(``DagRun.schedule_tis`` calls ``TaskInstance.defer_task``, which builds this trigger from the
operator's ``start_trigger_args``; feature ``start in triggerer``). :class:`InsightJobStartTrigger`
then picks the job itself, with the same rules as the operator without a task state store:

* this try's derived id (:class:`~airflow_insight.protocol.reattach.TaskIdentity`) is looked up
  first: a trigger rebuilt after it submitted (another triggerer, a restart) follows its own job;
* then the earlier tries' ids, newest first: a job still running is re-attached to (a retry);
* else it submits a fresh job on its connection's shared progress socket, tagged with that
  socket's ``connection-id``, so the server sends the job's messages there from the start and no
  solver callback waits for a ``SUBSCRIBE``.

From then on it follows the job exactly as :class:`~.insight.InsightJobTrigger` does (run log,
watermarks, kill, ``execution_timeout``), and its event adds ``started_in_triggerer`` (the job id
and document), so the task's resume pushes the job-id and link XComs a worker would have pushed
before deferring. The kwargs come from the DAG file (Airflow renders the templated ``job_request``
and ``payload`` in the triggerer); they hold no secret. A payload is an object-storage URL, read
(off the loop) only when this trigger submits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from airflow_insight.compat import features
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.links import INSIGHT_JOB_URL_XCOM_KEY, job_ui_url
from airflow_insight.progress import ProgressOptions
from airflow_insight.protocol.reattach import Reattach, Submit, TaskIdentity, choose_started_job
from airflow_insight.protocol.request import build_request
from airflow_insight.settings import ConnectionSettings
from airflow_insight.storage import aread_payload_bytes
from airflow_insight.triggers.end import EndPlan, worker_needed
from airflow_insight.triggers.insight import InsightJobTrigger, end_by_for, trigger_kwargs
from airflow_insight.triggers.payload import TriggerPayload
from airflow_insight.triggers.watermark_table import Watermark

START_CLASSPATH = "airflow_insight.triggers.start.InsightJobStartTrigger"
#: The key the start trigger's event adds: ``{"compute_job_id": ..., "document": {...}}``.
STARTED_KEY = "started_in_triggerer"
#: The XCom key of the job id (the operator's ``JOB_ID_XCOM_KEY``; operators sit above triggers).
JOB_ID_XCOM_KEY = "compute_job_id"
#: Logged when the trigger submitted the job: a task log with it started in the triggerer.
STARTED_MESSAGE = "Submitted Insight compute job %s from the triggerer (no worker started it)"


def start_kwargs(
    *,
    insight_conn_id: str,
    job_request: Mapping[str, Any] | None = None,
    payload: str | None = None,
    results_path: str | None = None,
    solution_path: str | None = None,
    progress_plot_path: str | None = None,
    accepted_model_statuses: Iterable[str] | None = None,
    silence_limit_seconds: float = 60.0,
    unreachable_limit_seconds: float | None = None,
    execution_timeout_seconds: float | None = None,
    progress: Mapping[str, Any] | None = None,
    end: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The start trigger's kwargs (the operator's ``start_trigger_args`` and ``serialize``)."""
    common = trigger_kwargs(
        insight_conn_id=insight_conn_id,
        compute_job_id="",
        accepted_model_statuses=accepted_model_statuses,
        silence_limit_seconds=silence_limit_seconds,
        unreachable_limit_seconds=unreachable_limit_seconds,
        progress=progress,
        end=end,
    )
    return {
        "insight_conn_id": common["insight_conn_id"],
        "job_request": None if job_request is None else dict(job_request),
        "payload": payload,
        "results_path": results_path,
        "solution_path": solution_path,
        "progress_plot_path": progress_plot_path,
        "accepted_model_statuses": common["accepted_model_statuses"],
        "silence_limit_seconds": common["silence_limit_seconds"],
        "unreachable_limit_seconds": common["unreachable_limit_seconds"],
        "execution_timeout_seconds": (
            None if execution_timeout_seconds is None else float(execution_timeout_seconds)
        ),
        "progress": common["progress"],
        "end": common["end"],
    }


class InsightJobStartTrigger(InsightJobTrigger):
    """Submit (or re-attach to) the task's job in the triggerer, then follow it to its end."""

    def __init__(
        self,
        *,
        insight_conn_id: str,
        job_request: dict[str, Any] | None = None,
        payload: str | None = None,
        results_path: str | None = None,
        solution_path: str | None = None,
        progress_plot_path: str | None = None,
        accepted_model_statuses: list[str] | None = None,
        silence_limit_seconds: float = 60.0,
        unreachable_limit_seconds: float | None = None,
        execution_timeout_seconds: float | None = None,
        progress: dict[str, Any] | None = None,
        end: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            insight_conn_id=insight_conn_id,
            compute_job_id="",  # chosen in run(): it depends on the try
            accepted_model_statuses=accepted_model_statuses,
            silence_limit_seconds=silence_limit_seconds,
            unreachable_limit_seconds=unreachable_limit_seconds,
            progress=progress,
        )
        #: Rendered by Airflow in the triggerer (the operator's template field of that name).
        self.job_request = job_request
        #: An object-storage URL of the payload (rendered there too), read when submitting.
        self.payload = payload
        #: Rendered there too; with ``end`` they make the plan the trigger ends the task with.
        self.results_path = results_path
        self.solution_path = solution_path
        self.progress_plot_path = progress_plot_path
        #: The end plan from the DAG file (no XComs: the job is chosen here), or None.
        self.end_plan = end
        self.execution_timeout_seconds = execution_timeout_seconds
        self._document: Mapping[str, Any] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Mirror ``__init__`` exactly; no secret, no token."""
        return START_CLASSPATH, start_kwargs(
            insight_conn_id=self.insight_conn_id,
            job_request=self.job_request,
            payload=self.payload,
            results_path=self.results_path,
            solution_path=self.solution_path,
            progress_plot_path=self.progress_plot_path,
            accepted_model_statuses=self.accepted_model_statuses,
            silence_limit_seconds=self.silence_limit_seconds,
            unreachable_limit_seconds=self.unreachable_limit_seconds,
            execution_timeout_seconds=self.execution_timeout_seconds,
            progress=self.progress,
            end=self.end_plan,
        )

    async def _start_watch(self, settings: ConnectionSettings) -> Any:
        """Choose the job (module docstring), then submit it here or watch it."""
        task_instance = getattr(self, "task_instance", None)
        if task_instance is None:
            raise ConfigurationError(
                "InsightJobStartTrigger needs its task instance: it runs only in a triggerer"
            )
        try_number = int(getattr(task_instance, "try_number", 1) or 1)
        identity = TaskIdentity.of(task_instance)
        own_id = identity.job_id(try_number)
        self._set_job(own_id)  # before submitting: a kill meanwhile knows which job to cancel
        self._set_end_by(task_instance)
        found = await self._hook.afind_job(
            settings, [own_id, *identity.earlier_job_ids(try_number)]
        )
        decision = choose_started_job(
            own_id=own_id,
            found_id=None if found is None else found[0],
            document=None if found is None else found[1],
            accepted=self._hook.accepted_model_statuses(self.accepted_model_statuses),
        )
        if isinstance(decision, Submit):
            watch = await self._submit(settings, decision.job_id)
            await self._job_chosen(settings)
            return watch
        assert isinstance(decision, Reattach)  # choose_started_job never reuses
        self._set_job(decision.job_id)
        self._document = decision.document
        await self._job_chosen(settings)
        self.log.info("Re-attaching to Insight compute job %s from the triggerer", decision.job_id)
        return await super()._start_watch(settings)

    async def _submit(self, settings: ConnectionSettings, job_id: str) -> Any:
        options = None if self.progress is None else ProgressOptions.from_json(self.progress)
        request = build_request(self.job_request, job_id, options)
        payload = None if self.payload is None else await aread_payload_bytes(self.payload)
        document, watch = await self._hook.asubmit_and_watch(
            settings,
            request,
            payload,
            config=self._follower_config(settings),
            app_messages=self._new_handler(),
        )
        self._document = document
        self.log.info(STARTED_MESSAGE, job_id)
        return watch

    def _set_job(self, job_id: str) -> None:
        self.compute_job_id = job_id
        self._mark = Watermark(job_id, 0, -1)

    async def _job_chosen(self, settings: ConnectionSettings) -> None:
        """Push the job id and the link now, as a worker pushes them before deferring (the link
        works while the job runs, and the end has one request less per XCom), then plan the
        end; XComs that could not be pushed now go into the plan, pushed at the end."""
        url = job_ui_url(
            settings.ui_base_url or settings.base_url, self.compute_job_id, self._document
        )
        xcoms = {JOB_ID_XCOM_KEY: self.compute_job_id, INSIGHT_JOB_URL_XCOM_KEY: url}
        ref = self.ti_ref
        if (
            ref is not None
            and features.end_in_triggerer().on
            and await self._pushed(ref, xcoms, "pushed when the task ends")
        ):
            xcoms = {}
        self._plan_the_end(xcoms)

    def _plan_the_end(self, xcoms: Mapping[str, Any]) -> None:
        """The plan the task ends with here: the DAG file's, with the XComs still to push and the
        rendered paths; none (a worker ends it) when a rendered path is a local one."""
        if self.end_plan is None:
            return
        paths = {
            "results_path": self.results_path,
            "solution_path": self.solution_path,
            "progress_plot_path": self.progress_plot_path,
        }
        why = worker_needed(paths)
        if why is not None:
            self.log.info("The task resumes on a worker when the job ends: %s", why)
            return
        plan = EndPlan.from_json(self.end_plan)
        self.end = dataclasses.replace(
            plan,
            xcoms=dict(xcoms),
            results_path=self.results_path,
            solution_path=self.solution_path,
            progress_plot_path=self.progress_plot_path,
        ).to_json()

    def _set_end_by(self, task_instance: Any) -> None:
        """``end_by`` from the task's start (set by Airflow when it deferred the task)."""
        seconds = self.execution_timeout_seconds
        timeout = None if seconds is None else timedelta(seconds=seconds)
        self.end_by = end_by_for(getattr(task_instance, "start_date", None), timeout)

    def _event(self, payload: TriggerPayload) -> dict[str, Any]:
        event = super()._event(payload)
        if self.compute_job_id:
            event[STARTED_KEY] = {
                "compute_job_id": self.compute_job_id,
                "document": None if self._document is None else dict(self._document),
            }
        return event

    async def on_kill(self) -> None:
        """As the following trigger's; before a job was chosen there is nothing to cancel."""
        if not self.compute_job_id:
            self.log.info("Stopped before an Insight compute job was chosen: nothing to cancel")
            return
        await super().on_kill()


def started_job(event: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None] | None:
    """The job a start trigger's event says it started (id, document); None for another event."""
    started = event.get(STARTED_KEY)
    if not isinstance(started, Mapping) or not isinstance(started.get("compute_job_id"), str):
        return None
    document = started.get("document")
    return started["compute_job_id"], document if isinstance(document, Mapping) else None
