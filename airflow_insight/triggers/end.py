"""A successful job's task end, done in the triggerer so no worker resumes the task.

The operator (or sensor) hands the trigger an :class:`EndPlan` (JSON-safe, in the trigger's
kwargs) only when nothing in the task's end needs a worker: every file it writes is an
object-storage URL, and the user did not ask to keep the worker resume (``resume_on_worker``).
At a ``COMPLETED`` job with an accepted model status the trigger then does what
``execute_complete`` would do (fill the run log over REST, download the results and the incumbent,
draw the progress picture, delete the job) and ends the task with Airflow's ``TaskSuccessEvent``,
whose XComs are the ones the worker would push: ``return_value`` (the same dict) and the plan's
own (the job id and the extra link's URL).

Anything else goes back to the worker with the usual event: a failed, cancelled or
model-failed job (so retries, ``AirflowFailException`` and failure callbacks behave as ever; a
``TaskFailedEvent`` would fail the task without the exception's message and, before Airflow 3.3,
without retries, see ``docs/design.md``), a timeout, an error, an Airflow line without end events
(feature ``end in triggerer``), the trigger running inline under ``dag.test()`` (which resumes the
task with the event's payload and would lose the result), and an end step that fails here (the
worker repeats it and fails or succeeds as it always did). The job is deleted last, only once
everything else succeeded (the XComs pushed too), so the worker's repeat finds it.

The XComs are pushed through the triggerer's supervisor as a worker pushes them
(``compat.supervisor.set_xcom``), not as the event's ``xcoms``: Airflow stores those JSON-encoded
once more, and a downstream task would read a JSON string instead of the result dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Coroutine, Mapping
from typing import Any

from airflow_insight.exceptions import ConfigurationError, InsightError
from airflow_insight.hooks.insight import InsightHook, job_result
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.storage import awrite_bytes, is_object_storage_url

#: The XCom key of a task's result (Airflow's ``XCOM_RETURN_KEY``).
RETURN_VALUE_KEY = "return_value"


@dataclasses.dataclass(frozen=True, slots=True)
class EndPlan:
    """What the end of a successful job needs, for the trigger to do it (JSON-safe)."""

    #: XComs pushed with the result (the job id and the link's URL; none for the sensor).
    xcoms: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    results_path: str | None = None
    solution_path: str | None = None
    progress_plot_path: str | None = None
    #: Whether the result carries ``"progress"`` (the operator asked for solver progress).
    with_progress: bool = False
    #: The gap rule's target, drawn in the picture.
    target_gap: float | None = None
    delete: bool = False

    def to_json(self) -> dict[str, Any]:
        """The plan as trigger kwargs."""
        return {**dataclasses.asdict(self), "xcoms": dict(self.xcoms)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndPlan:
        """The plan from trigger kwargs (unknown keys ignored: a newer operator's plan)."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def worker_needed(paths: Mapping[str, str | None]) -> str | None:
    """Why the end needs a worker (a plain local path is a worker's disk), or None.

    ``paths`` maps argument names to their values; the first local one is named.
    """
    for name, value in paths.items():
        if value and not is_object_storage_url(value):
            return (
                f"{name} {value!r} is a local path, on the worker's disk (the triggerer may run on"
                " another machine): the task resumes on a worker to write it; give an"
                " object-storage URL (s3://, gs://, file:// on a shared disk) to end it in the"
                " triggerer"
            )
    return None


def resume_reason(task: Any, base: type, resume_on_worker: bool) -> str | None:
    """Why ``task`` (an instance of ``base`` or a subclass) resumes on a worker whatever its
    paths, or None: asked for, a subclass's own ``execute_complete`` (user code to run), an
    ``on_success_callback`` (dropped for a task its trigger ended), or the OpenLineage provider
    (its task events are sent by the worker that ends the task)."""
    from airflow_insight.compat.sdk import openlineage_operator_lineage

    if resume_on_worker:
        return "resume_on_worker=True"
    if type(task).execute_complete is not base.execute_complete:  # type: ignore[attr-defined]
        return f"{type(task).__name__} has its own execute_complete"
    if getattr(task, "on_success_callback", None):
        # Airflow 3.0 to 3.4 send it to the DAG processor, which runs failure callbacks only.
        return "on_success_callback runs only for a task a worker ends"
    if openlineage_operator_lineage() is not None:
        return "the OpenLineage provider is installed, and its task events come from a worker"
    return None


class EndFailed(Exception):
    """The end could not be done in the triggerer: the worker does it (the message says why)."""


async def end_in_triggerer(
    hook: InsightHook,
    settings: ConnectionSettings,
    plan: EndPlan,
    outcome: JobOutcome,
    progress: Mapping[str, Any] | None,
    accepted: frozenset[str],
    log: Any,
) -> dict[str, Any] | None:
    """The XComs ending the task successfully, or None when the job did not succeed (the worker
    raises its failure). Raises :class:`EndFailed` when a step failed here. The job is not
    deleted yet: :func:`after_the_end` does that once the XComs are pushed."""
    if outcome.error(accepted) is not None:
        return None
    warning = outcome.warning(accepted)
    if warning:
        log.warning(warning)
    await hook.aforward_run_log_after(settings, outcome, outcome.last_run_log_line)
    result = job_result(settings, outcome)
    job_id = outcome.compute_job_id
    if plan.with_progress:
        result["progress"] = None if progress is None else dict(progress)
        await _progress_files(hook, settings, plan, job_id, progress, result, log)
    if plan.results_path and outcome.result_url:
        try:
            target = await hook.adownload(settings, job_id, outcome.result_url, plan.results_path)
        except (InsightError, OSError) as exc:
            raise EndFailed(f"could not write the results of {job_id}: {exc}") from exc
        result["results_path"] = target
        log.info("Wrote the results of %s to %s", job_id, target)
    elif plan.results_path:
        log.warning("Job %s has no result URL: nothing to download", job_id)
    return {**plan.xcoms, RETURN_VALUE_KEY: result}


async def _progress_files(
    hook: InsightHook,
    settings: ConnectionSettings,
    plan: EndPlan,
    job_id: str,
    progress: Mapping[str, Any] | None,
    result: dict[str, Any],
    log: Any,
) -> None:
    """The picture and the incumbent; like the worker, neither fails the task."""
    if progress is None:
        if plan.progress_plot_path or plan.solution_path:
            log.warning("No solver progress for %s in this try: no picture, no incumbent", job_id)
        return
    if plan.progress_plot_path:
        await _picture(plan, plan.progress_plot_path, job_id, progress, result, log)
    if plan.solution_path:
        url = progress.get("latest_solution_file")
        if not isinstance(url, str) or not url:
            log.warning("Job %s reported no INTSOL incumbent: nothing to download", job_id)
            return
        download = hook.adownload(settings, job_id, url, plan.solution_path)
        await _extra(download, "solution_path", f"the latest incumbent of {job_id}", result, log)


async def _picture(
    plan: EndPlan,
    target: str,
    job_id: str,
    progress: Mapping[str, Any],
    result: dict[str, Any],
    log: Any,
) -> None:
    import asyncio

    from airflow_insight.progress_plot import render_progress_png

    async def draw() -> str:
        image = await asyncio.to_thread(
            render_progress_png,
            progress["series"],
            title=f"Insight compute job {job_id}",
            target_gap=plan.target_gap,
            stopped_by=progress.get("stopped_by"),
        )
        return await awrite_bytes(target, image)

    await _extra(
        draw(), "progress_plot_path", f"the solver-progress picture of {job_id}", result, log
    )


async def _extra(
    write: Coroutine[Any, Any, str], key: str, what: str, result: dict[str, Any], log: Any
) -> None:
    """Write one extra file; its place goes into ``result[key]``. A failure is a warning only,
    as on the worker: the job's own end decided the task already."""
    try:
        written = await write
    except (ConfigurationError, InsightError, OSError) as exc:
        log.warning("Could not write %s: %s", what, exc)
    else:
        result[key] = written
        log.info("Wrote %s to %s", what, written)


async def after_the_end(
    hook: InsightHook, settings: ConnectionSettings, plan: EndPlan, job_id: str, log: Any
) -> None:
    """The last step, once the task's XComs are pushed: delete the job (``on_finish``)."""
    if not plan.delete:
        return
    try:
        await hook.acancel_job(settings, job_id)
    except InsightError as exc:
        log.warning("Deleting Insight compute job %s failed: %s", job_id, exc)
