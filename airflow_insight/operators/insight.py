"""The operator that runs one FICO Xpress Insight compute job and follows it to its end.

:class:`InsightJobOperator` submits a ``ComputeJobRequest`` (with an optional payload zip),
streams the job's run log into the task log (:class:`~airflow_insight.hooks.insight.RunLogSink`)
and ends the task per protocol §A7: success returns a result dict (the XCom ``return_value``);
any other end fails the task with a message naming the job, its status, its model status and the
last run-log lines. It reaches the server only through
:class:`~airflow_insight.hooks.insight.InsightHook`.

Key decisions, each explained in ``docs/design.md``:

* local checks first (payload, request, connection): a task that cannot run mints no token and
  fails at once, without retries;
* the job id is stored in ``task_state_store`` *before* submitting, and a later try re-attaches,
  reuses or resubmits per :func:`airflow_insight.protocol.reattach.choose_job`
  (``docs/design.md#retries-and-re-attaching``);
* ``on_kill`` cancels only when a user stopped the task, never on a worker shutdown; a timeout
  or Ctrl-C cancels, and Ctrl-C fails the task without a retry
  (``docs/design.md#kill-interrupt-and-timeout``);
* solver progress answers the job's callbacks in the core and logs on ``insight.progress``
  (``docs/design.md#solver-progress-in-the-operator``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow_insight.compat import features
from airflow_insight.compat.sdk import (
    AirflowFailException,
    AirflowTaskTimeout,
    BaseOperator,
    conf,
)
from airflow_insight.exceptions import ConfigurationError, InsightError, JobNotFound
from airflow_insight.hooks.insight import InsightHook, RunLogSink, airflow_error
from airflow_insight.hooks.task_state import StateAnswer, TaskInstanceLike, current_task_state
from airflow_insight.links import INSIGHT_JOB_URL_XCOM_KEY, InsightJobLink, job_ui_url
from airflow_insight.payloads import payload_bytes as payload_bytes
from airflow_insight.progress import (
    ProgressOptions,
    SolverProgress,
    StopAtGap,
    StopRule,
)
from airflow_insight.protocol.cancel import CancelEnd
from airflow_insight.protocol.events import StatusChanged
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.reattach import (
    Decision,
    Reattach,
    Reuse,
    Submit,
    TaskIdentity,
    choose_job,
    earlier_try_numbers,
    is_terminal_document,
    job_to_look_up,
)
from airflow_insight.protocol.reattach import (
    derive_job_id as derive_job_id,
)
from airflow_insight.protocol.request import build_request as build_request
from airflow_insight.settings import ConnectionSettings
from airflow_insight.storage import payload_from

if TYPE_CHECKING:
    from airflow_insight.compat.sdk import Context

#: ``task_state_store`` key holding ``{"compute_job_id": ...}`` of the current job.
STATE_KEY = "insight_compute_job"
#: XCom key of the job id, pushed right after submitting (before following or deferring), so a
#: downstream task or a user can reach the job while this task still runs or is deferred.
JOB_ID_XCOM_KEY = "compute_job_id"
#: Logged first by execute_complete: the trigger's part of the task log ends here.
RESUMED_MESSAGE = "Resumed from the trigger"


def _progress_options(
    solver_progress: bool | Sequence[str],
    stop_rules: Sequence[StopRule | Mapping[str, Any]] | None,
    progress_plot_path: str | None,
    solution_path: str | None,
    wait_for_termination: bool,
) -> ProgressOptions | None:
    """The operator's progress arguments checked together; a ``ConfigurationError`` if wrong."""
    options = ProgressOptions.from_arguments(solver_progress, stop_rules)
    if options is None and (progress_plot_path or solution_path):
        raise ConfigurationError(
            "progress_plot_path and solution_path need solver progress: pass solver_progress=True"
        )
    if options is not None and not wait_for_termination:
        raise ConfigurationError(
            "solver_progress needs wait_for_termination=True: without a task following the job"
            " nobody answers the solver's callbacks, and the server fails the job after 60 s"
        )
    explicit = None if options is None else options.callbacks
    if solution_path and explicit is not None and "INTSOL" not in explicit:
        raise ConfigurationError(
            "solution_path downloads INTSOL incumbents: add 'INTSOL' to solver_progress"
        )
    return options


def _target_gap(options: ProgressOptions | None) -> float | None:
    """The first gap rule's target (drawn as a line in the picture), or None."""
    rules = () if options is None else options.stop_rules
    return next((rule.relative_gap for rule in rules if isinstance(rule, StopAtGap)), None)


class InsightJobOperator(BaseOperator):
    """Run one Insight compute job, stream its run log into the task log, end as the job ends.

    :param job_request: ``ComputeJobRequest`` fields (templated). ``id`` is set by the operator,
        ``runLogMessages`` is forced on, ``computeJobType`` defaults to ``SOLVER``;
        ``solver.callbacks`` is refused unless ``solver_progress`` is on.
    :param payload: path of a payload zip, of a directory the operator zips, or of a single model
        file it zips (templated); a local path or an object-storage URL (``s3://``, ``gs://``,
        ``file://``...: read through Airflow's ``ObjectStoragePath``); None sends no payload.
    :param job_id: the compute job id (templated). Default: derived per attempt from DAG id,
        run id, task id, map index and try number (readable prefix + short hash).
    :param insight_conn_id: the Airflow connection of type ``insight``.
    :param on_finish: ``"keep"`` the job on the server at its end, or ``"delete"`` it (after
        the results are downloaded).
    :param results_path: where to write the results zip on success (templated): a local path on
        the disk of the process that ends the task, or an object-storage URL (``s3://``,
        ``gs://``, ``file://``...); None: no download.
    :param accepted_model_statuses: model statuses counted as success at ``COMPLETED``; default:
        the connection's ``accepted_model_statuses`` extra (itself defaulting to ``{"OK"}``).
    :param silence_limit_seconds: check the job over REST when nothing was heard for this long.
    :param unreachable_limit_seconds: fail the task (retryably) when neither the socket nor any
        REST call has answered for this long; None: the connection's extra of that name.
    :param wait_for_termination: False: submit, return the job's details at once (no following).
    :param deferrable: follow the job from the triggerer instead of the worker.
    :param cancel_wait_seconds: how long a cancel (kill, timeout, Ctrl-C) waits for ``CANCELLED``.
    :param solver_progress: follow the solver live: True picks the callbacks for
        ``solver.problemType`` (MIP: ``INTSOL``, ``GLOBALLOG``, plus ``GAPNOTIFY`` for a gap rule),
        a list names them; each ``APP_MESSAGE`` is one record on the ``insight.progress`` logger
        and the result gets ``"progress"`` (stopped early and by which rule, the last record,
        the series of time, best solution, best bound and gap). Needs ``wait_for_termination``.
    :param stop_rules: stop the solve (``interruptSolve: true``) when a rule fires, the first in
        order: ``StopAtGap(0.01)``, ``StopAfterNoImprovement(seconds)``, ``StopAtObjective(value)``
        or their dict forms (``{"rule": "relative_gap", "relative_gap": 0.01}``). Need
        ``solver_progress``.
    :param progress_plot_path: write the progress picture (PNG) there at the end (templated), a
        local path or an object-storage URL; needs the ``plot`` extra (without it a warning).
    :param solution_path: download the latest ``INTSOL`` incumbent (its ``appMessageFile``) there
        after the job ended (templated), a local path or an object-storage URL; needs
        ``solver_progress`` with ``INTSOL``.
    :param resume_on_worker: deferrable mode: resume on a worker (``execute_complete``) to end a
        successful task, as for a failed one. Default False: the triggerer ends it itself, with
        the same XComs, the moment the job ends, unless the end needs a worker: a local
        ``results_path``, ``solution_path`` or ``progress_plot_path`` (a worker's disk, which
        the triggerer may not share), a subclass's own ``execute_complete``, an
        ``on_success_callback`` (Airflow drops it for a task its trigger ended), or the
        OpenLineage provider (its task events are sent by the worker). True keeps the worker
        resume always.
    :param start_in_triggerer: deferrable mode, Airflow 3.3 on: start the task in the triggerer
        (Airflow's ``start_from_trigger``), where its trigger submits the job, so no worker runs
        any part of a task that also ends there. Needs no payload or an object-storage URL as
        payload. Default False: Airflow 3.3.2's triggerer can deadlock when many such tasks of
        one DAG start at once while triggers log heavily (``docs/design.md``).
    """

    template_fields: Sequence[str] = (
        "job_request",
        "payload",
        "job_id",
        "results_path",
        "progress_plot_path",
        "solution_path",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"job_request": "json"}
    operator_extra_links = (InsightJobLink(),)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        job_request: Mapping[str, Any] | None = None,
        payload: str | os.PathLike[str] | None = None,
        job_id: str | None = None,
        insight_conn_id: str = InsightHook.default_conn_name,
        on_finish: Literal["keep", "delete"] = "keep",
        results_path: str | None = None,
        accepted_model_statuses: Sequence[str] | None = None,
        silence_limit_seconds: float = 60.0,
        unreachable_limit_seconds: float | None = None,
        wait_for_termination: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_wait_seconds: float = 30.0,
        solver_progress: bool | Sequence[str] = False,
        stop_rules: Sequence[StopRule | Mapping[str, Any]] | None = None,
        progress_plot_path: str | None = None,
        solution_path: str | None = None,
        resume_on_worker: bool = False,
        start_in_triggerer: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_finish not in ("keep", "delete"):
            raise ValueError(f"on_finish must be 'keep' or 'delete', not {on_finish!r}")
        if not silence_limit_seconds > 0 or cancel_wait_seconds < 0:
            raise ValueError("silence_limit_seconds must be > 0 and cancel_wait_seconds >= 0")
        if unreachable_limit_seconds is not None and not unreachable_limit_seconds > 0:
            raise ValueError("unreachable_limit_seconds must be > 0 (or None: the connection's)")
        self.job_request = job_request
        self.payload = payload
        self.job_id = job_id
        self.insight_conn_id = insight_conn_id
        self.on_finish = on_finish
        self.results_path = results_path
        self.accepted_model_statuses = (
            None if accepted_model_statuses is None else list(accepted_model_statuses)
        )
        self.silence_limit_seconds = silence_limit_seconds
        self.unreachable_limit_seconds = unreachable_limit_seconds
        self.wait_for_termination = wait_for_termination
        self.deferrable = deferrable
        self.cancel_wait_seconds = cancel_wait_seconds
        # Checked here, so a mistake is an import error of the DAG file, not a failed run.
        self._progress = _progress_options(
            solver_progress, stop_rules, progress_plot_path, solution_path, wait_for_termination
        )
        self.solver_progress = solver_progress
        self.stop_rules = [] if self._progress is None else self._progress.to_json()["stop_rules"]
        self.progress_plot_path = progress_plot_path
        self.solution_path = solution_path
        self.resume_on_worker = resume_on_worker
        self.start_in_triggerer = start_in_triggerer
        #: The handler of the job followed in blocking mode (its summary goes into the result).
        self._handler: SolverProgress | None = None
        self._hook: InsightHook | None = None
        #: The job this process follows now: what on_kill cancels.
        self._active_job_id: str | None = None
        #: The job a kill cancelled and saw end: its later statuses are old news to the log.
        self._cancel_seen_ending: str | None = None
        #: The running task instance (set by execute): on_kill asks Airflow about its state.
        self._ti: TaskInstanceLike | None = None
        self._start_in_triggerer_if_possible()

    def _start_in_triggerer_if_possible(self) -> None:
        """Let Airflow start the task in the triggerer where it can (see :mod:`.start`)."""
        from airflow_insight.operators import start

        self.start_in_triggerer_off = start.why_not_in_triggerer(
            asked=self.start_in_triggerer,
            deferrable=self.deferrable,
            wait_for_termination=self.wait_for_termination,
            payload=self.payload,
            job_id=self.job_id,
            job_request=self.job_request,
            execute_overridden=type(self).execute is not InsightJobOperator.execute,
            start_hooks=bool(getattr(self, "on_execute_callback", None))
            or bool(getattr(self, "_pre_execute_hook", None))
            or type(self).pre_execute is not InsightJobOperator.pre_execute,
        )
        if self.start_in_triggerer_off is not None:
            return
        timeout = self.execution_timeout
        self.start_trigger_args = start.start_trigger_args(
            insight_conn_id=self.insight_conn_id,
            job_request=self.job_request,
            payload=None if self.payload is None else str(self.payload),
            results_path=self.results_path,
            solution_path=self.solution_path,
            progress_plot_path=self.progress_plot_path,
            accepted_model_statuses=self.accepted_model_statuses,
            silence_limit_seconds=self.silence_limit_seconds,
            unreachable_limit_seconds=self.unreachable_limit_seconds,
            execution_timeout_seconds=None if timeout is None else timeout.total_seconds(),
            progress=None if self._progress is None else self._progress.to_json(),
            end=self._start_end_plan(),
        )
        self.start_from_trigger = True

    def _start_end_plan(self) -> dict[str, Any] | None:
        """The end plan of a task started in the triggerer (its trigger fills in the XComs and
        the rendered paths), or None: a worker ends it."""
        from airflow_insight.triggers.end import EndPlan, resume_reason, worker_needed

        paths = {
            "results_path": self.results_path,
            "solution_path": self.solution_path,
            "progress_plot_path": self.progress_plot_path,
        }
        if resume_reason(self, InsightJobOperator, self.resume_on_worker) or worker_needed(paths):
            return None
        return EndPlan(
            with_progress=self._progress is not None,
            target_gap=_target_gap(self._progress),
            delete=self.on_finish == "delete",
        ).to_json()

    # ----------------------------------------------------------------------------- execute

    def execute(self, context: Context) -> Any:
        """Submit (or re-attach to) the job, then follow it, defer, or return at once."""
        self._ti = context.get("ti")
        features.log_once("worker task")
        try:
            return self._execute(context)
        except InsightError as exc:
            raise airflow_error(exc) from exc
        except AirflowTaskTimeout:
            # execution_timeout: cancel the remote job, then let Airflow fail the task.
            self._cancel_active()
            raise
        except KeyboardInterrupt as interrupt:
            # Ctrl-C in an interactive run (a supervised task never gets here, see the module
            # docstring): cancel what this process started, then stop without a retry.
            message = self._interrupted()
            if message is None:
                raise
            raise AirflowFailException(message) from interrupt

    def _execute(self, context: Context) -> Any:
        # Local checks first: nothing is minted or sent for a connection, a payload or a request
        # that cannot work (reading the connection's settings does no network I/O).
        self.hook.get_settings()
        payload = payload_from(self.payload)
        fresh_id = self.job_id or self._derived_job_id(context)
        # A submitted job always takes the fresh id (see choose_job): one request serves it.
        request = build_request(self.job_request, fresh_id, self._progress)
        decision = self._choose_job(context, fresh_id)
        if isinstance(decision, Reuse):
            self.log.info(
                "Insight compute job %s already completed in an earlier try", decision.job_id
            )
            return self._finish(JobOutcome.from_job_document(decision.job_id, decision.document))
        if isinstance(decision, Submit):
            self._remember(context, decision.job_id)
        job_id = decision.job_id
        if not self.wait_for_termination or self.deferrable:
            document = self._submit_unfollowed(decision, request, payload)
            self._push_link(context, job_id, document)
            if not self.wait_for_termination:
                return self.hook.job_result(JobOutcome.from_job_document(job_id, document))
            if isinstance(decision, Reattach):
                # Said as in blocking mode: the task log shows which job a retry went back to.
                self.log.info("Re-attaching to Insight compute job %s", job_id)
            self._defer(context, job_id)
        return self._follow_blocking(context, decision, request, payload)

    def _follow_blocking(
        self,
        context: Context,
        decision: Decision,
        request: Mapping[str, Any],
        payload: bytes | None,
    ) -> Any:
        """Follow the job on this worker over the progress socket until it ends."""
        config = self.hook.follower_config(
            silence_limit_seconds=self.silence_limit_seconds,
            unreachable_limit_seconds=self.unreachable_limit_seconds,
        )
        job_id = decision.job_id
        handler = self._handler = None if self._progress is None else self._progress.handler()
        follower = self.hook.job_follower(config, RunLogSink(), self.log, self._reported_by_kill)
        with follower as driver:
            driver.open()
            self._active_job_id = job_id
            if isinstance(decision, Reattach):
                self.log.info("Re-attaching to Insight compute job %s", job_id)
                driver.follow(job_id, app_messages=handler)
                document: Mapping[str, Any] = decision.document
            else:
                document = driver.submit(request, payload, app_messages=handler)
                self.log.info("Submitted Insight compute job %s", job_id)
            self._push_link(context, job_id, document)
            outcome = driver.wait(job_id)
        self._active_job_id = None
        assert outcome is not None  # wait() without a timeout returns only with an outcome
        return self._finish(outcome, None if handler is None else handler.summary())

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> Any:
        """Resume after the trigger's event: fill the log from REST, end like the blocking path.

        The REST run log is not read again when the trigger's outcome says it forwarded the
        whole log (``run_log_complete`` and the event's ``last_run_log_line`` is its last line).
        """
        from airflow_insight.triggers.insight import warn_if_log_unread
        from airflow_insight.triggers.payload import TriggerPayload
        from airflow_insight.triggers.start import started_job

        try:
            payload = TriggerPayload.from_dict(event)
        except InsightError as exc:
            self.log.info("%s (an event of an unknown kind)", RESUMED_MESSAGE)
            raise airflow_error(exc) from exc
        self.log.info("%s (Insight compute job %s)", RESUMED_MESSAGE, payload.compute_job_id)
        started = started_job(event)
        if started is not None:
            # Started in the triggerer: the XComs a worker pushes before deferring come now.
            self._push_link(context, *started)
        try:
            warn_if_log_unread(payload, self.log)
            outcome = payload.result()
            self.hook.forward_run_log_after(outcome, payload.last_run_log_line)
            return self._finish(outcome, payload.progress)
        except InsightError as exc:
            raise airflow_error(exc) from exc

    # ----------------------------------------------------------------------------- the end

    def _finish(
        self, outcome: JobOutcome, progress: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The hook's end of the job, plus the operator's own: the progress summary (and its
        picture and incumbent), results download, ``on_finish``."""
        try:
            result = self.hook.job_end(outcome, self.accepted_model_statuses, self.log)
            if self._progress is not None:
                result["progress"] = None if progress is None else dict(progress)
                self._progress_files(outcome.compute_job_id, progress, result)
            if self.results_path and outcome.result_url:
                target = self.hook.download_results(outcome, self.results_path)
                result["results_path"] = str(target)
                self.log.info("Wrote the results of %s to %s", outcome.compute_job_id, target)
            elif self.results_path:
                self.log.warning(
                    "Job %s has no result URL: nothing to download", outcome.compute_job_id
                )
            return result
        finally:
            if self.on_finish == "delete":
                self._delete(outcome.compute_job_id)

    def _progress_files(
        self, job_id: str, progress: Mapping[str, Any] | None, result: dict[str, Any]
    ) -> None:
        """Write the progress picture and download the latest incumbent, when asked for.

        Neither fails the task: the job's own end decided that already, and both are extras.
        """
        if progress is None:
            if self.progress_plot_path or self.solution_path:
                self.log.warning(
                    "No solver progress for %s in this try: no picture, no incumbent", job_id
                )
            return
        if self.progress_plot_path:
            from airflow_insight.progress_plot import write_progress_png

            try:
                picture = write_progress_png(
                    progress["series"],
                    self.progress_plot_path,
                    title=f"Insight compute job {job_id}",
                    target_gap=_target_gap(self._progress),
                    stopped_by=progress.get("stopped_by"),
                )
            except (ConfigurationError, OSError) as exc:
                self.log.warning("No solver-progress picture for %s: %s", job_id, exc)
            else:
                result["progress_plot_path"] = str(picture)
                self.log.info("Wrote the solver-progress picture of %s to %s", job_id, picture)
        if self.solution_path:
            url = progress.get("latest_solution_file")
            if not isinstance(url, str) or not url:
                self.log.warning("Job %s reported no INTSOL incumbent: nothing to download", job_id)
                return
            try:
                target = self.hook.download_app_message_file(job_id, url, self.solution_path)
            except (InsightError, OSError) as exc:
                self.log.warning("Could not download the incumbent of %s: %s", job_id, exc)
            else:
                result["solution_path"] = str(target)
                self.log.info("Wrote the latest incumbent of %s to %s", job_id, target)

    # ----------------------------------------------------------------------------- kill

    def on_kill(self) -> None:
        """Cancel the remote job if a user stopped the task; else leave it for the next try.

        How a user's decision is told from a worker shutdown:
        ``docs/design.md#kill-interrupt-and-timeout``.
        """
        job_id = self._active_job_id
        if job_id is None:
            return
        answer = (
            current_task_state(self._ti)
            if self._ti is not None
            else StateAnswer(None, False, "no task instance to ask about")
        )
        decision = answer.decision
        if decision.cancels:
            self.log.warning(
                "The task instance is now in %s in Airflow: a user stopped it (%s)",
                answer.describe(),
                decision.reason,
            )
            self._cancel_active()
        elif answer.told:
            self.log.warning(
                "Not cancelling Insight compute job %s: %s (%s). The job keeps running; the next"
                " try re-attaches to it",
                job_id,
                decision.reason,
                answer.describe(),
            )
        else:
            self.log.warning(
                "Not cancelling Insight compute job %s: %s (%s). The job keeps running and the"
                " next try re-attaches to it; cancel it on the Insight server if it is no longer"
                " wanted",
                job_id,
                decision.reason,
                answer.describe(),
            )

    def _interrupted(self) -> str | None:
        """Cancel the active job after Ctrl-C; the interrupt's message (None: no job)."""
        job_id = self._active_job_id
        if job_id is None:
            return None
        self.log.warning("Interrupted (Ctrl-C) while running Insight compute job %s", job_id)
        status = self._cancel_active()
        if status is None:
            return (
                f"Interrupted (Ctrl-C): cancelling Insight compute job {job_id} was asked for,"
                " but it did not confirm; check it on the Insight server"
            )
        return f"Interrupted (Ctrl-C): Insight compute job {job_id} was cancelled (status {status})"

    def _cancel_active(self) -> str | None:
        """Cancel the active job unless it already ended, and wait (bounded); its final status
        ("gone" for a job the server no longer has), or None if not known."""
        job_id, self._active_job_id = self._active_job_id, None
        if job_id is None:
            return None
        self.log.warning("Cancelling Insight compute job %s", job_id)
        result = self.hook.cancel_job_and_wait(job_id, self.cancel_wait_seconds)
        self.log.log(result.log_level, result.describe())
        if result.end is CancelEnd.GONE:
            return "gone"
        if result.end in (CancelEnd.ENDED, CancelEnd.ALREADY_ENDED):
            # A kill runs in a signal handler while the follower holds statuses it has not
            # logged yet (CANCELLING): logged after this line they would read backwards.
            self._cancel_seen_ending = job_id
            return result.status
        return None

    def _reported_by_kill(self, event: object) -> bool:
        """A status of the job the kill saw end: older than the kill's line, so not logged."""
        return isinstance(event, StatusChanged) and event.job_id == self._cancel_seen_ending

    # ----------------------------------------------------------------------------- helpers

    @property
    def hook(self) -> InsightHook:
        """The hook of ``insight_conn_id`` (one per operator instance)."""
        if self._hook is None:
            self._hook = InsightHook(self.insight_conn_id)
        return self._hook

    @property
    def settings(self) -> ConnectionSettings:
        """The connection's settings."""
        return self.hook.get_settings()

    def _choose_job(self, context: Context, fresh_id: str) -> Decision:
        """Read the stored id, look the job up, and let the core decide
        (``docs/design.md#retries-and-re-attaching``)."""
        has_store = context.get("task_state_store") is not None
        stored = self._stored_job_id(context) if has_store else None
        document: dict[str, Any] | None = None
        if not has_store and not self.job_id:
            stored, document = self._earlier_try_job(context)
        candidate = job_to_look_up(stored, self.job_id)
        if candidate is not None and document is None:
            try:
                document = self.hook.get_job(candidate)
            except JobNotFound:
                document = None
        decision = choose_job(
            stored_id=stored,
            fixed_id=self.job_id or None,
            fresh_id=fresh_id,
            document=document,
            accepted=self.hook.accepted_model_statuses(self.accepted_model_statuses),
            reuse=has_store,
        )
        if isinstance(decision, Submit) and decision.delete_first:
            self.log.info(
                "Deleting the finished Insight compute job %s to reuse its id",
                decision.delete_first,
            )
            self._delete(decision.delete_first)
        return decision

    def _stored_job_id(self, context: Context) -> str | None:
        record = context["task_state_store"].get(STATE_KEY)
        value = record.get("compute_job_id") if isinstance(record, Mapping) else None
        return value if isinstance(value, str) and value else None

    def _earlier_try_job(self, context: Context) -> tuple[str | None, dict[str, Any] | None]:
        """No task state store: the newest earlier try's job and its document
        (``docs/design.md#retries-and-re-attaching``)."""
        try_number = int(getattr(context["ti"], "try_number", 1) or 1)
        for earlier in earlier_try_numbers(try_number):
            job_id = self._derived_job_id(context, earlier)
            try:
                document = self.hook.get_job(job_id)
            except JobNotFound:
                continue  # that try re-attached to an older job, or failed before submitting
            if not is_terminal_document(document):
                self.log.info(
                    "No task_state_store in this Airflow: found try %d's job %s still running",
                    earlier,
                    job_id,
                )
            return job_id, document
        return None, None

    def _derived_job_id(self, context: Context, try_number: int | None = None) -> str:
        ti = context["ti"]
        return TaskIdentity.of(ti).job_id(try_number or int(getattr(ti, "try_number", 1) or 1))

    def _remember(self, context: Context, job_id: str) -> None:
        """Store the id BEFORE submitting, so a crash right after the submit can re-attach."""
        store = context.get("task_state_store")
        if store is not None:
            store.set(STATE_KEY, {"compute_job_id": job_id})

    def _submit_unfollowed(
        self, decision: Decision, request: Mapping[str, Any], payload: bytes | None
    ) -> Mapping[str, Any]:
        """Submit without following (fire and forget, or before deferring); a re-attached job's
        document as it is."""
        if not isinstance(decision, Submit):
            return decision.document
        self._active_job_id = decision.job_id
        document = self.hook.submit_job(request, payload)
        self.log.info("Submitted Insight compute job %s", decision.job_id)
        return document

    def _push_link(self, context: Context, job_id: str, document: Mapping[str, Any] | None) -> None:
        """Push the job id and the extra link's URL."""
        settings = self.settings
        ui_base = settings.ui_base_url or settings.base_url
        url = job_ui_url(ui_base, job_id, document)
        context["ti"].xcom_push(key=JOB_ID_XCOM_KEY, value=job_id)
        context["ti"].xcom_push(key=INSIGHT_JOB_URL_XCOM_KEY, value=url)

    def _defer(self, context: Context, job_id: str) -> None:
        from airflow_insight.triggers.insight import InsightJobTrigger, end_by_for, trigger_kwargs

        ti = context["ti"]
        kwargs = trigger_kwargs(
            insight_conn_id=self.insight_conn_id,
            compute_job_id=job_id,
            accepted_model_statuses=self.accepted_model_statuses,
            silence_limit_seconds=self.silence_limit_seconds,
            end_by=end_by_for(getattr(ti, "start_date", None), self.execution_timeout),
            unreachable_limit_seconds=self.unreachable_limit_seconds,
            progress=None if self._progress is None else self._progress.to_json(),
            end=self._end_plan(),
        )
        self._active_job_id = None  # from now on the trigger owns the job
        # No defer timeout: the trigger enforces end_by itself and cancels the job then.
        self.defer(trigger=InsightJobTrigger(**kwargs), method_name="execute_complete")

    def _end_plan(self) -> dict[str, Any] | None:
        """What the trigger needs to end a successful task itself, or None: a worker resumes it
        (``resume_on_worker``; the reason is logged)."""
        from airflow_insight.triggers.end import EndPlan, resume_reason, worker_needed

        why = resume_reason(self, InsightJobOperator, self.resume_on_worker) or worker_needed(
            {
                "results_path": self.results_path,
                "solution_path": self.solution_path,
                "progress_plot_path": self.progress_plot_path,
            }
        )
        if why is not None:
            self.log.info("The task resumes on a worker when the job ends: %s", why)
            return None
        # No XComs in the plan: the job id and the link were pushed before deferring, and Airflow
        # clears a task's XComs only when a new try starts, never for a task its trigger ends.
        return EndPlan(
            results_path=self.results_path,
            solution_path=self.solution_path,
            progress_plot_path=self.progress_plot_path,
            with_progress=self._progress is not None,
            target_gap=_target_gap(self._progress),
            delete=self.on_finish == "delete",
        ).to_json()

    def _delete(self, job_id: str) -> None:
        try:
            self.hook.delete_job(job_id)
        except InsightError as exc:
            self.log.warning("Deleting Insight compute job %s failed: %s", job_id, exc)

    # ----------------------------------------------------------------------------- lineage

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional): an ``insight_compute_job`` run facet; None without it.

        Called by ``apache-airflow-providers-openlineage`` after the task succeeded; the job is
        read from this attempt's ``return_value`` XCom (the result dict), so blocking, deferrable
        and fire-and-forget runs all report it.
        """
        from airflow_insight import openlineage

        result = task_instance.xcom_pull(task_ids=self.task_id, key="return_value")
        if not isinstance(result, Mapping):
            job_id = task_instance.xcom_pull(task_ids=self.task_id, key=JOB_ID_XCOM_KEY)
            result = {"compute_job_id": job_id}
        try:
            server_url: str | None = self.settings.base_url
        except InsightError:
            server_url = None  # The connection went away: report the job without the server.
        return openlineage.operator_lineage(
            openlineage.compute_job_facet_fields(result, server_url)
        )
