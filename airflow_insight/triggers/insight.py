"""The trigger that follows an Insight compute job from the triggerer (contract: trigger-contract).

:class:`InsightJobTrigger` registers its job with the event loop's
:class:`~airflow_insight.transport.socket_hub.SocketHub`, so every deferred job on one Insight
connection shares one progress socket. It forwards each run-log line into the task's log as its
own record (logger ``...InsightJobTrigger.run_log``, so the lines stay apart from the trigger's own
messages) and yields exactly one event (see :func:`outcome_from_event` for the payloads).

Kill and timeout, per Airflow 3.3's trigger life cycle:

* ``end_by`` (epoch seconds, from ``execution_timeout``) reached: the trigger cancels the remote
  job and reports ``timeout``.
* ``on_kill`` (a user marked the deferred task failed or success, or cleared it): the remote job is
  cancelled when ``cancel_on_kill``.
* ``cleanup`` (every exit, including a triggerer restart or a move to another triggerer) only
  unsubscribes: the job keeps running and the next triggerer picks it up.

Everything here that touches the network runs off the event loop (``asyncio.to_thread`` around the
one REST client); the connection is read with ``aget_connection``; the kwargs hold no secret.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_insight import exceptions
from airflow_insight.exceptions import ConfigurationError, InsightError, InsightTimeout
from airflow_insight.hooks.insight import settings_from_connection
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.async_driver import DriverEvent, FollowFailed
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.socket_hub import JobWatch, SocketHub

CLASSPATH = "airflow_insight.triggers.insight.InsightJobTrigger"
#: Give the loop back after forwarding this many lines, so a flood never blocks it.
LINES_PER_YIELD = 200
#: Bound on the DELETE at timeout or kill (Airflow gives ``on_kill`` 30 s in all).
CANCEL_TIMEOUT_SECONDS = 20.0


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
) -> dict[str, Any]:
    """The one place trigger kwargs are built (operator and sensor both call it); JSON-safe."""
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
    }


def end_by_for(start: datetime | None, execution_timeout: timedelta | None) -> float | None:
    """``end_by`` for a task that started at ``start`` with ``execution_timeout`` (or None)."""
    if execution_timeout is None:
        return None
    begun = start.timestamp() if start is not None else time.time()
    return begun + execution_timeout.total_seconds()


def outcome_from_event(event: Mapping[str, Any]) -> JobOutcome:
    """Read the trigger's event: the outcome, or raise what ended the wait.

    ``finished`` gives the :class:`JobOutcome` (its ``last_run_log_line`` is what the trigger
    forwarded); ``timeout`` raises :class:`InsightTimeout`; ``error`` raises the named
    :class:`InsightError` subclass with its ``permanent`` flag as sent.
    """
    kind = event.get("kind")
    if kind == "finished":
        return JobOutcome.from_dict(event["outcome"])
    job_id = event.get("compute_job_id")
    if kind == "timeout":
        state = "cancelled" if event.get("cancelled") else "could NOT be cancelled (check Insight)"
        raise InsightTimeout(
            f"execution_timeout reached while following Insight compute job {job_id!r}; "
            f"the job {state}"
        )
    if kind == "error":
        raise _error(str(event.get("error_type")), str(event.get("message")), event)
    raise exceptions.LocalProtocolError(f"not an InsightJobTrigger event: kind {kind!r}")


def _error(name: str, message: str, event: Mapping[str, Any]) -> InsightError:
    kind = getattr(exceptions, name, None)
    error: InsightError
    try:
        if not (isinstance(kind, type) and issubclass(kind, InsightError)):
            raise TypeError(name)
        error = kind(message)
    except TypeError:  # Unknown name, or a class that needs more than a message.
        error = InsightError(f"{name}: {message}")
    error.permanent = bool(event.get("permanent", error.permanent))
    return error


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
        self._settings: ConnectionSettings | None = None
        self._watch: JobWatch | None = None

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
        )

    @property
    def run_log(self) -> Any:
        """Where run-log lines go, one record per line: ``<trigger's logger>.run_log``, so they
        stay apart from the trigger's own messages."""
        cls = type(self)
        return structlog.get_logger(f"{cls.__module__}.{cls.__qualname__}.run_log")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Follow the job to its end (or ``end_by``); yield exactly one event."""
        try:
            settings = await self._connection_settings()
            self._watch = SocketHub.for_running_loop().watch(
                self.insight_conn_id,
                settings,
                self.compute_job_id,
                execution_attempts=self.execution_attempts,
                last_run_log_line=self.last_run_log_line,
                config=FollowerConfig(silence_limit_seconds=self.silence_limit_seconds),
            )
            try:
                payload = await self._follow(self._watch, settings)
            finally:
                self._watch.close()
        except InsightError as exc:
            payload = self._error_payload(exc, self.last_run_log_line)
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def cleanup(self) -> None:
        """Unsubscribe only: a restarted or moved trigger must leave the job running."""
        if self._watch is not None:
            self._watch.close()

    async def on_kill(self) -> None:
        """A user acted on the deferred task: cancel the remote job (when ``cancel_on_kill``)."""
        if not self.cancel_on_kill:
            self.log.info(
                "Leaving Insight compute job %s running (cancel_on_kill=False)", self.compute_job_id
            )
            return
        settings = self._settings or await self._connection_settings()
        await self._cancel(settings, "the task was stopped by a user")

    # ----------------------------------------------------------------------------- internals

    async def _connection_settings(self) -> ConnectionSettings:
        try:
            connection = await BaseHook.aget_connection(self.insight_conn_id)
        except AirflowNotFoundException:
            raise ConfigurationError(
                f"Airflow connection {self.insight_conn_id!r} does not exist; create it"
            ) from None
        self._settings = settings_from_connection(connection)
        return self._settings

    async def _follow(self, watch: JobWatch, settings: ConnectionSettings) -> dict[str, Any]:
        while True:
            remaining = None if self.end_by is None else self.end_by - time.time()
            try:
                async with asyncio.timeout(remaining):
                    event = await watch.next_event()
            except TimeoutError:
                watch.close()
                cancelled = await self._cancel(settings, "execution_timeout was reached")
                return {
                    "kind": "timeout",
                    "compute_job_id": self.compute_job_id,
                    "cancelled": cancelled,
                    "last_run_log_line": watch.last_run_log_line,
                }
            await self._log_event(event)
            if isinstance(event, ev.JobFinished):
                # Complete for the resume only if this watch got every line the core forwarded
                # (a watch that joined late or stopped at a gap did not): else it refetches.
                complete = (
                    event.outcome.run_log_complete
                    and watch.last_run_log_line == event.outcome.last_run_log_line
                )
                outcome = dataclasses.replace(
                    event.outcome,
                    last_run_log_line=watch.last_run_log_line,
                    run_log_complete=complete,
                )
                return {
                    "kind": "finished",
                    "outcome": outcome.to_dict(),
                    "last_run_log_line": watch.last_run_log_line,
                }
            if isinstance(event, FollowFailed):
                return self._error_payload(event.error, watch.last_run_log_line)

    async def _log_event(self, event: DriverEvent) -> None:
        if isinstance(event, ev.RunLogGap):
            # The watch stopped at the gap: the resume reads the rest over REST (socket_hub).
            self.log.warning(
                "Insight compute job %s: run-log lines from %d on did not arrive here; the task"
                " reads them from the job's run log when it resumes",
                event.job_id,
                event.first_line,
            )
            return
        if not isinstance(event, ev.RunLogLines):
            self.log.log(event.log_level, event.describe())
            return
        run_log = self.run_log
        for count, line in enumerate(event.lines, start=1):
            run_log.info(line)
            if count % LINES_PER_YIELD == 0:
                await asyncio.sleep(0)

    async def _cancel(self, settings: ConnectionSettings, why: str) -> bool:
        """DELETE the job off the loop; True when the server took the cancellation."""
        job_id = self.compute_job_id
        self.log.warning("Cancelling Insight compute job %s: %s", job_id, why)

        def cancel() -> None:
            with InsightRestClient(settings) as rest:
                rest.cancel_job(job_id)

        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_SECONDS):
                await asyncio.to_thread(cancel)
        except (InsightError, TimeoutError) as exc:
            self.log.error("Could not cancel Insight compute job %s: %s", job_id, exc)
            return False
        self.log.info("Insight compute job %s cancelled", job_id)
        return True

    def _error_payload(self, error: InsightError, last_run_log_line: int) -> dict[str, Any]:
        self.log.error("Following Insight compute job %s failed: %s", self.compute_job_id, error)
        return {
            "kind": "error",
            "error_type": type(error).__name__,
            "message": str(error),
            "permanent": error.permanent,
            "compute_job_id": self.compute_job_id,
            "last_run_log_line": last_run_log_line,
        }
