"""The trigger that follows an Insight compute job from the triggerer (contract: trigger-contract).

:class:`InsightJobTrigger` follows its job through :meth:`InsightHook.watch_job`, so every
deferred job on one Insight connection shares one progress socket. It forwards each run-log line
through the hook's :class:`~airflow_insight.hooks.insight.RunLogSink` (a chunk at a time, so a
flood never blocks the loop), logs every other event once, and yields exactly one event: a
:class:`~airflow_insight.triggers.payload.TriggerPayload`, or Airflow's ``TaskSuccessEvent`` when
its ``end`` plan lets it end a successful task itself (:mod:`.end`). It fires only once the
triggerer has read what it logged (:mod:`.log_delivery`).

Key decisions, each explained in ``docs/design.md#the-triggers-life-cycle``:

* a trigger rebuilt on another triggerer resumes after the watermark stored by the last one
  (:mod:`.watermark`, :mod:`.shutdown`);
* ``end_by`` (from ``execution_timeout``) cancels the job; ``on_kill`` cancels only when a user
  ended the task (``docs/design.md#one-kill-decision``), and every cancel is the core's
  :class:`~airflow_insight.protocol.cancel.CancelFlow` (a job already ended is left alone);
* inline under ``dag.test()`` SIGINT cancels the job and SIGTERM leaves it running;
* nothing blocks the loop, and the kwargs hold no secret; the hook is built at the first use,
  not where the operator builds the trigger to defer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow_insight.compat import features, supervisor
from airflow_insight.compat.runner import finish_despite_cancels
from airflow_insight.compat.sdk import BaseTrigger, TriggerEvent, task_success_event
from airflow_insight.compat.supervisor import SupervisorUnavailable, TaskInstanceRef
from airflow_insight.exceptions import InsightError, JobCancelled
from airflow_insight.hooks.insight import EventLog, InsightHook, JobWatch, RunLogSink
from airflow_insight.hooks.kill_decision import KillDecision, for_deferred_trigger
from airflow_insight.progress import ProgressOptions, SolverProgress
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.cancel import CancelEnd, CancelResult
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.settings import ConnectionSettings
from airflow_insight.triggers import log_delivery
from airflow_insight.triggers.end import EndFailed, EndPlan, after_the_end, end_in_triggerer
from airflow_insight.triggers.payload import TriggerPayload
from airflow_insight.triggers.watermark import writer_for_running_loop
from airflow_insight.triggers.watermark_store import StoreUnavailable, WatermarkWriter
from airflow_insight.triggers.watermark_table import Watermark

CLASSPATH = "airflow_insight.triggers.insight.InsightJobTrigger"
#: Give the loop back after forwarding this many lines, so a flood never blocks it.
LINES_PER_YIELD = 200
#: Bound on each REST call of a cancel (Airflow gives ``on_kill`` 30 s in all).
CANCEL_TIMEOUT_SECONDS = 20.0
#: After an interrupt's DELETE, wait this long at most for the job to reach ``CANCELLED``.
CANCEL_WAIT_SECONDS = 10.0
#: Bound on the kill decision and cancel made in ``cleanup`` where Airflow calls no ``on_kill``
#: (the same as Airflow 3.3's ``[triggerer] on_kill_timeout`` default).
KILL_IN_CLEANUP_SECONDS = 30.0
#: Bound on the final watermark persist in ``cleanup`` (the triggerer may be shutting down).
FINAL_PERSIST_TIMEOUT_SECONDS = 2.0
_INTERRUPT = "insight-trigger-interrupt"


def trigger_kwargs(
    *,
    insight_conn_id: str,
    compute_job_id: str,
    execution_attempts: int = 0,
    last_run_log_line: int = -1,
    accepted_model_statuses: Iterable[str] | None = None,
    silence_limit_seconds: float = 60.0,
    end_by: float | None = None,
    cancel_on_kill: bool = True,
    unreachable_limit_seconds: float | None = None,
    progress: Mapping[str, Any] | None = None,
    end: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one place trigger kwargs are built (operator and sensor both call it); JSON-safe.

    ``unreachable_limit_seconds`` None means the connection's setting. ``progress`` is
    :meth:`ProgressOptions.to_json` (the callbacks and stop rules) or None: no solver progress.
    ``end`` is :meth:`.end.EndPlan.to_json`: the trigger ends a successful task itself (None:
    the task resumes on a worker).
    """
    return {
        "insight_conn_id": insight_conn_id,
        "compute_job_id": compute_job_id,
        "execution_attempts": int(execution_attempts),
        "last_run_log_line": int(last_run_log_line),
        "accepted_model_statuses": (
            None if accepted_model_statuses is None else sorted(accepted_model_statuses)
        ),
        "silence_limit_seconds": float(silence_limit_seconds),
        "end_by": None if end_by is None else float(end_by),
        "cancel_on_kill": bool(cancel_on_kill),
        "unreachable_limit_seconds": (
            None if unreachable_limit_seconds is None else float(unreachable_limit_seconds)
        ),
        # Rebuilt and written again, so only the fields the trigger reads travel.
        "progress": None if progress is None else ProgressOptions.from_json(progress).to_json(),
        "end": None if end is None else EndPlan.from_json(end).to_json(),
    }


def end_by_for(start: datetime | None, execution_timeout: timedelta | None) -> float | None:
    """``end_by`` for a task that started at ``start`` with ``execution_timeout`` (or None)."""
    if execution_timeout is None:
        return None
    begun = start.timestamp() if start is not None else time.time()
    return begun + execution_timeout.total_seconds()


def warn_if_log_unread(payload: TriggerPayload, log: Any) -> None:
    """In the task's log: the trigger fired before its triggerer read its last log records."""
    if payload.log_unread:
        log.warning(
            "The triggerer had not read the trigger's last log records after %.0f s when it"
            " fired: run-log lines of Insight compute job %s after line %d may be in the"
            " triggerer's own log instead of this task's (the job's run log in Insight has them"
            " all)",
            log_delivery.DELIVERY_LIMIT_SECONDS,
            payload.compute_job_id,
            payload.last_run_log_line,
        )


class InsightJobTrigger(BaseTrigger):
    """Follow one compute job on the shared progress socket; yield one event at its end."""

    def __init__(
        self,
        *,
        insight_conn_id: str,
        compute_job_id: str,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        accepted_model_statuses: list[str] | None = None,
        silence_limit_seconds: float = 60.0,
        end_by: float | None = None,
        cancel_on_kill: bool = True,
        unreachable_limit_seconds: float | None = None,
        progress: dict[str, Any] | None = None,
        end: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.insight_conn_id = insight_conn_id
        self.compute_job_id = compute_job_id
        self.execution_attempts = execution_attempts
        self.last_run_log_line = last_run_log_line
        self.accepted_model_statuses = accepted_model_statuses
        self.silence_limit_seconds = silence_limit_seconds
        self.end_by = end_by
        self.cancel_on_kill = cancel_on_kill
        self.unreachable_limit_seconds = unreachable_limit_seconds
        self.progress = progress
        self.end = end
        #: The job's solver-callback handler while following (None: no progress asked for).
        self._handler: SolverProgress | None = None
        self._events: EventLog | None = None
        self._watch: JobWatch | None = None
        #: The watermark reached (forwarded) so far, and whether the trigger has ended for good.
        self._mark = Watermark(compute_job_id, execution_attempts, last_run_log_line)
        self._ended = False
        #: run() was cancelled before its event (a user's action, a stop or a move).
        self._cancelled = False
        self._built_at = time.time()  # a resume reads watermarks stored after this (wall clock)
        self._ref_of: Any = None
        self._ref: TaskInstanceRef | None = None
        #: Inline only: the signals handled here, the handlers they replaced, the one received.
        self._signals: list[signal.Signals] = []
        self._previous_handlers: dict[signal.Signals, Any] = {}
        self._interrupted_by: signal.Signals | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Mirror ``__init__`` exactly; no secret, no token."""
        return CLASSPATH, trigger_kwargs(
            insight_conn_id=self.insight_conn_id,
            compute_job_id=self.compute_job_id,
            execution_attempts=self.execution_attempts,
            last_run_log_line=self.last_run_log_line,
            accepted_model_statuses=self.accepted_model_statuses,
            silence_limit_seconds=self.silence_limit_seconds,
            end_by=self.end_by,
            cancel_on_kill=self.cancel_on_kill,
            unreachable_limit_seconds=self.unreachable_limit_seconds,
            progress=self.progress,
            end=self.end,
        )

    @property
    def _event_log(self) -> EventLog:
        """Logs an event once: on the logger it names (``insight.progress``), else on ours."""
        if self._events is None:
            self._events = EventLog(self.log)
        return self._events

    @functools.cached_property
    def _hook(self) -> InsightHook:
        """The connection's hook, built at the first use: the operator builds the trigger to
        defer, and the hook is the triggerer's business."""
        return InsightHook(self.insight_conn_id)

    @functools.cached_property
    def _run_log(self) -> RunLogSink:
        """Where run-log lines go (the hook's one forwarding loop)."""
        return RunLogSink()

    @property
    def ti_ref(self) -> TaskInstanceRef | None:
        """The task instance served (None inline under ``dag.test``: no triggerer)."""
        task_instance = getattr(self, "task_instance", None)
        if self._ref_of is not task_instance:  # the triggerer sets it once, before run()
            self._ref_of, self._ref = task_instance, TaskInstanceRef.of(task_instance)
        return self._ref

    @property
    def _writer(self) -> WatermarkWriter | None:
        """The loop's watermark writer; None inline or where watermarks cannot be resumed."""
        if self.ti_ref is None or not features.watermark_resume().on:
            return None
        return writer_for_running_loop()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Follow the job to its end (or ``end_by``); yield exactly one event."""
        inline = self.ti_ref is None
        if inline:
            self._catch_signals()
        else:
            features.log_once("triggerer")
        writer = self._writer
        if writer is not None:
            writer.watch_shutdown()
        try:
            payload = await self._run()
            ended = None if inline else await self._end_here(payload)
        except asyncio.CancelledError:
            self._cancelled = True
            raise
        finally:
            self._release_signals()
        if not inline and not await self._logged_before_firing():
            payload = dataclasses.replace(payload, log_unread=True)
        self._end_watermark()
        if ended is not None:
            yield ended
            return
        yield TriggerEvent(self._event(payload))  # type: ignore[no-untyped-call]

    async def _end_here(self, payload: TriggerPayload) -> TriggerEvent | None:
        """Airflow's success event, its XComs pushed, when this trigger can end the task (see
        :mod:`.end`); None: the usual event, and a worker resumes the task."""
        if self.end is None or payload.kind != "finished" or payload.outcome is None:
            return None
        if not features.end_in_triggerer().on:
            return None
        job_id, ref, plan = self.compute_job_id, self.ti_ref, EndPlan.from_json(self.end)
        if ref is None:
            return None
        try:
            settings = await self._hook.aget_settings()
            accepted = self._hook.accepted_model_statuses(self.accepted_model_statuses)
            xcoms = await end_in_triggerer(
                self._hook, settings, plan, payload.outcome, payload.progress, accepted, self.log
            )
        except (EndFailed, InsightError) as exc:
            self.log.warning(
                "Could not end the task of Insight compute job %s here (%s): a worker resumes"
                " it to end it",
                job_id,
                exc,
            )
            return None
        if xcoms is None:
            return None  # The job failed: the worker raises it (retries, callbacks as ever).
        if not await self._pushed(ref, xcoms, "a worker resumes it to end it"):
            return None
        await after_the_end(self._hook, settings, plan, job_id, self.log)
        self.log.info(
            "Insight compute job %s succeeded: the task ends here, in the triggerer", job_id
        )
        return task_success_event()

    async def _pushed(self, ref: TaskInstanceRef, xcoms: Mapping[str, Any], fallback: str) -> bool:
        """Push the task's XComs as its worker would; False when that failed, logged with
        ``fallback`` (what happens instead)."""
        try:
            for key, value in xcoms.items():
                await supervisor.set_xcom(ref, key, value)
        except (SupervisorUnavailable, TypeError, ValueError, OSError) as exc:  # or the backend's
            self.log.warning(
                "Could not push the XComs of Insight compute job %s's task (%s): %s",
                self.compute_job_id,
                exc,
                fallback,
            )
            return False
        return True

    async def _logged_before_firing(self) -> bool:
        """Fire only once the triggerer has read what was logged here (see :mod:`.log_delivery`):
        the event ends the task's trigger log stream, and lines read later would miss it.
        False when the limit passed first (the event says so, for the task's log)."""
        delivered = await log_delivery.wait_until_read(log_delivery.log_stream_fd())
        if delivered is not False:
            return True
        self.log.warning(  # likely in the triggerer's own log, hence the event's flag
            "The triggerer had not read this trigger's last log records after %.0f s",
            log_delivery.DELIVERY_LIMIT_SECONDS,
        )
        return False

    async def cleanup(self) -> None:
        """Unsubscribe; unless the trigger ended, persist the watermark for the next triggerer;
        close the hook's REST client.

        Where Airflow never calls ``on_kill`` (feature ``trigger on_kill`` off), a trigger
        cancelled before its end makes the same kill decision here.
        """
        try:
            await self._keep_the_place()
        finally:
            self._hook.close()

    async def _keep_the_place(self) -> None:
        if self._watch is not None:
            self._watch.close()
        if self.ti_ref is None or self._ended:
            return
        if self._cancelled and not features.trigger_on_kill().on:
            await finish_despite_cancels(self.on_kill(), KILL_IN_CLEANUP_SECONDS)
            if self._ended:
                return
        ref, writer = self.ti_ref, self._writer
        if ref is None or writer is None:
            return
        if await writer.persist_now(ref, self._mark, FINAL_PERSIST_TIMEOUT_SECONDS):
            self.log.info(
                "Stored where forwarding stopped (line %d of attempt %d of Insight compute job"
                " %s): the next triggerer resumes after it",
                self._mark.last_run_log_line,
                self._mark.execution_attempts,
                self.compute_job_id,
            )

    async def on_kill(self) -> None:
        """Cancel the remote job only if a user really stopped the task
        (``docs/design.md#the-triggers-life-cycle``)."""
        job_id = self.compute_job_id
        if not self.cancel_on_kill:
            self.log.info("Leaving Insight compute job %s running (cancel_on_kill=False)", job_id)
            return
        try:
            decision = await self._kill_decision()
        except asyncio.CancelledError:
            self.log.warning(
                "Leaving Insight compute job %s running: the triggerer stopped before it could"
                " tell whether a user stopped the task. %s",
                job_id,
                await self._cancel_hint(),
            )
            raise
        if isinstance(decision, str):
            self.log.warning(
                "Leaving Insight compute job %s running: could not tell whether a user stopped"
                " the task (%s). %s",
                job_id,
                decision,
                await self._cancel_hint(),
            )
            return
        if not decision.cancels:
            self.log.warning("Leaving Insight compute job %s running: %s", job_id, decision.reason)
            return
        self._ended = True  # A user ended the task: no watermark to keep for anyone.
        self._end_watermark()
        try:
            settings = await self._hook.aget_settings()
        except InsightError as exc:
            self.log.warning("Could not cancel Insight compute job %s: %s", job_id, exc)
            return
        await self._cancel(settings, decision.reason)

    # ----------------------------------------------------------------------------- following

    async def _run(self) -> TriggerPayload:
        try:
            settings = await self._hook.aget_settings()
            watch = self._watch = await self._start_watch(settings)
            try:
                return await self._follow(watch, settings)
            finally:
                watch.close()
        except InsightError as exc:
            return self._error_payload(exc)

    async def _start_watch(self, settings: ConnectionSettings) -> JobWatch:
        """Watch the job from where this trigger (or an earlier triggerer) got to."""
        await self._resume_point()
        return self._hook.watch_job(
            settings,
            self.compute_job_id,
            execution_attempts=self._mark.execution_attempts,
            last_run_log_line=self._mark.last_run_log_line,
            config=self._follower_config(settings),
            app_messages=self._new_handler(),
        )

    def _new_handler(self) -> SolverProgress | None:
        """The job's solver-callback handler (None: no progress asked for)."""
        if self.progress is not None:
            self._handler = ProgressOptions.from_json(self.progress).handler()
        return self._handler

    def _event(self, payload: TriggerPayload) -> dict[str, Any]:
        """The event's payload (the start trigger adds what the task's resume needs)."""
        return payload.to_dict()

    def _follower_config(self, settings: ConnectionSettings) -> FollowerConfig:
        """The follower timing: this trigger's limits, else the connection's."""
        return self._hook.follower_config(
            silence_limit_seconds=self.silence_limit_seconds,
            unreachable_limit_seconds=self.unreachable_limit_seconds,
            settings=settings,
        )

    async def _resume_point(self) -> None:
        """Start after the watermark an earlier triggerer stored, if it is further on."""
        ref, writer = self.ti_ref, self._writer
        if ref is None or writer is None:
            return
        reader = writer.reader
        try:
            stored = await reader.find(ref, self.compute_job_id, not_before=self._built_at)
        except StoreUnavailable as exc:
            self.log.warning("Could not read where an earlier triggerer stopped: %s", exc)
            return
        mark = self._mark
        if stored is None or not stored.is_after(mark.execution_attempts, mark.last_run_log_line):
            return
        self._mark = dataclasses.replace(stored, try_number=ref.try_number)
        writer.update(ref, self._mark)  # kept if we stop at once
        self.log.info(
            "Resuming after line %d of attempt %d of Insight compute job %s (where an earlier"
            " triggerer stopped; lines it forwarded after its last save may repeat)",
            stored.last_run_log_line,
            stored.execution_attempts,
            self.compute_job_id,
        )

    async def _follow(self, watch: JobWatch, settings: ConnectionSettings) -> TriggerPayload:
        while True:
            remaining = None if self.end_by is None else self.end_by - time.time()
            try:
                async with asyncio.timeout(remaining):
                    event = await watch.next_event()
            except TimeoutError:
                watch.close()
                result = await self._cancel(settings, "execution_timeout was reached")
                return TriggerPayload.timed_out(
                    self.compute_job_id, watch.last_run_log_line, result.cancelled
                )
            except asyncio.CancelledError as exc:
                signum = self._interrupt_signal(exc)
                if signum is None:
                    raise
                return await self._interrupted(signum, watch, settings)
            if not await self._log_event(event, watch):
                await self._wait_for_the_stop(watch)
            if isinstance(event, ev.JobFinished):
                # What this watch forwarded (it may have joined late or stopped at a gap): the
                # resume refetches the rest unless the core's rule says it has the whole log.
                last = watch.last_run_log_line
                outcome = dataclasses.replace(
                    event.outcome,
                    last_run_log_line=last,
                    run_log_complete=event.outcome.run_log_forwarded_through(last),
                )
                handler = self._handler
                progress = None if handler is None else handler.summary()
                return TriggerPayload.finished(outcome, progress)
            error = self._hook.watch_failure(event)
            if error is not None:
                return self._error_payload(error, watch.last_run_log_line)

    async def _wait_for_the_stop(self, watch: JobWatch) -> None:
        """The triggerer is stopping: forward nothing more; its runner cancels this task soon."""
        watch.close()
        self.log.info(
            "The triggerer is stopping: stopped forwarding after line %d of attempt %d of Insight"
            " compute job %s; the next triggerer resumes after it",
            self._mark.last_run_log_line,
            self._mark.execution_attempts,
            self.compute_job_id,
        )
        await asyncio.get_running_loop().create_future()  # never set: cancelled by the runner

    async def _log_event(self, event: Any, watch: JobWatch) -> bool:
        """Log one event, once: its lines on the run-log logger, anything else on ours.

        False when the triggerer started stopping first (see :mod:`.shutdown`): nothing more
        was forwarded after the watermark, which the stop write stores.
        """
        stop = self._writer
        if stop is not None and stop.stopping:
            return False
        if isinstance(event, ev.RunLogGap):
            # The watch stopped at the gap: the resume reads the rest over REST (socket_hub).
            self.log.warning(
                "Insight compute job %s: run-log lines from %d on did not arrive here; the task"
                " reads them from the job's run log when it resumes",
                event.job_id,
                event.first_line,
            )
            return True
        if not isinstance(event, ev.RunLogLines):
            if self._hook.watch_failure(event) is None:  # A failure is logged with the payload.
                # Progress records go to their own logger (insight.progress), the rest to ours.
                self._event_log(event)
            return True
        for count in self._run_log.in_chunks(event.lines, LINES_PER_YIELD):
            # The mark is exact at every point where the stop signal can be handled.
            self._forwarded(event.execution_attempts, event.first_line + count - 1)
            await asyncio.sleep(0)
            if stop is not None and stop.stopping:
                return False
        self._forwarded(event.execution_attempts, watch.last_run_log_line)
        return True

    def _forwarded(self, execution_attempts: int, last_line: int) -> None:
        """Called after each forwarded batch: keep it cheap (1,000 jobs, many batches each)."""
        ref = self.ti_ref
        try_number = 0 if ref is None else ref.try_number
        self._mark = Watermark(self.compute_job_id, execution_attempts, last_line, try_number)
        writer = self._writer
        if ref is not None and writer is not None:
            writer.update(ref, self._mark)

    def _end_watermark(self) -> None:
        """The trigger ended: its entry leaves the watermark table at the next write."""
        self._ended = True
        ref, writer = self.ti_ref, self._writer
        if ref is not None and writer is not None:
            writer.forget(ref)

    # ----------------------------------------------------------------------------- kill

    async def _kill_decision(self) -> KillDecision | str:
        """The decision, or why it cannot be made (a string)."""
        ref = self.ti_ref
        if ref is None:
            return "the trigger runs without its task instance"
        writer = self._writer
        try:
            state = await supervisor.task_state(ref)
            stored = None if writer is None else await writer.reader.latest_for(ref)
        except (SupervisorUnavailable, StoreUnavailable) as exc:
            return f"the triggerer's supervisor did not answer: {exc}"
        return for_deferred_trigger(
            state,
            try_number=ref.try_number,
            compute_job_id=self.compute_job_id,
            latest=None if stored is None else (stored.try_number, stored.compute_job_id),
        )

    async def _cancel(
        self, settings: ConnectionSettings, why: str, wait_seconds: float = 0.0
    ) -> CancelResult:
        """Cancel the job unless it already ended (the core's cancel flow, off the loop), then
        wait up to ``wait_seconds`` for its end; how it ended, logged."""
        job_id = self.compute_job_id
        self.log.warning("Cancelling Insight compute job %s: %s", job_id, why)
        result = await self._hook.acancel_job_and_wait(
            settings, job_id, wait_seconds, CANCEL_TIMEOUT_SECONDS
        )
        if result.end is CancelEnd.FAILED:
            hint = self._hook.cancel_hint(settings, job_id)
            self.log.error("%s. %s", result.describe(), hint)
        else:
            self.log.info(result.describe())
        return result

    async def _cancel_hint(self) -> str:
        try:
            settings = await self._hook.aget_settings()
        except InsightError:
            return f"To cancel it, cancel Insight compute job {self.compute_job_id} in Insight."
        return self._hook.cancel_hint(settings, self.compute_job_id)

    # ----------------------------------------------------------------------------- inline signals

    def _catch_signals(self) -> None:
        """Inline (no triggerer): SIGINT cancels the job, SIGTERM ends the wait (docstring)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, self._on_signal, signum, task)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._signals.append(signum)
            self._previous_handlers[signum] = previous

    def _release_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
            previous = self._previous_handlers.pop(signum, None)
            if previous is not None:
                signal.signal(signum, previous)
        self._signals.clear()

    def _on_signal(self, signum: signal.Signals, task: asyncio.Task[Any]) -> None:
        if self._interrupted_by is not None:
            raise KeyboardInterrupt  # A second signal: stop waiting for anything.
        self._interrupted_by = signum
        task.cancel(f"{_INTERRUPT}:{int(signum)}")

    def _interrupt_signal(self, exc: asyncio.CancelledError) -> signal.Signals | None:
        signum = self._interrupted_by
        if signum is None or not (exc.args and str(exc.args[0]).startswith(_INTERRUPT)):
            return None
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return signum

    async def _interrupted(
        self, signum: signal.Signals, watch: JobWatch, settings: ConnectionSettings
    ) -> TriggerPayload:
        watch.close()
        job_id, last = self.compute_job_id, watch.last_run_log_line
        if signum == signal.SIGINT:
            result = await self._cancel(
                settings, "interrupted (SIGINT, Ctrl-C)", CANCEL_WAIT_SECONDS
            )
            cancelled = result.cancelled
            status = result.status if cancelled or result.end is CancelEnd.ALREADY_ENDED else None
            state = f"cancelled (now {status})" if status else "cancelled"
            if result.end is CancelEnd.ALREADY_ENDED:
                state = f"not cancelled: it had already ended ({result.status})"
            elif not cancelled:
                state = f"could NOT be cancelled. {self._hook.cancel_hint(settings, job_id)}"
            cancel_error = JobCancelled(
                f"Interrupted (Ctrl-C) while following Insight compute job {job_id!r}; the job"
                f" was {state}",
                compute_job_id=job_id,
                status=status or "CANCELLED",
                model_status=None,
            )
            cancel_error.permanent = True  # A retry would start again what the user stopped.
            return self._error_payload(cancel_error, last, cancelled=cancelled)
        hint = self._hook.cancel_hint(settings, job_id)
        self.log.warning("SIGTERM: leaving Insight compute job %s running. %s", job_id, hint)
        error = InsightError(
            f"Stopped by SIGTERM while following Insight compute job {job_id!r}; the job is left"
            f" running. {hint}"
        )
        error.permanent = True
        return self._error_payload(error, last)

    def _error_payload(
        self, error: InsightError, last_run_log_line: int | None = None, cancelled: bool = False
    ) -> TriggerPayload:
        self.log.error("Following Insight compute job %s failed: %s", self.compute_job_id, error)
        last = self._mark.last_run_log_line if last_run_log_line is None else last_run_log_line
        return TriggerPayload.failed(self.compute_job_id, last, error, cancelled)
