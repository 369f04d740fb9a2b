"""The Airflow hook for FICO Xpress Insight: the adapters' only door to the server.

Operator, sensor and trigger reach Insight only through :class:`InsightHook`: it reads the
connection, hands out the REST calls they make (submit, look up, cancel, download), the blocking
follower (:meth:`InsightHook.job_follower`), the trigger's shared-socket watch
(:meth:`InsightHook.watch_job`) and the end of a job (:meth:`InsightHook.job_end`). No adapter
imports :mod:`airflow_insight.transport`. One REST client serves a hook for its life, blocking
and async calls alike (a kill's cancel excepted: it may run inside a signal handler).

Run-log lines are forwarded in one place, :class:`RunLogSink`: one record per line on the logger
:data:`RUN_LOG_LOGGER`, each after the mark :data:`RUN_LOG_PREFIX` (why a bar:
``docs/design.md#the-run-log-mark``). The connection's fields and extras are read by
:mod:`airflow_insight.settings`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog

from airflow_insight.compat.masking import mask_announced_secrets
from airflow_insight.compat.sdk import (
    AirflowFailException,
    AirflowNotFoundException,
    BaseHook,
    call_sync_sdk,
    get_async_connection,
)
from airflow_insight.exceptions import ConfigurationError, InsightError, JobNotFound
from airflow_insight.hooks import connection_form
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.cancel import CancelFlow, CancelResult, ReadStatus, SendDelete, Step
from airflow_insight.protocol.events import FollowFailed, RunLogLines
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.runlog import split_run_log
from airflow_insight.protocol.unreachable import UnreachableTimer
from airflow_insight.protocol.wire import COMPUTE_JOBS_PATH
from airflow_insight.settings import KNOWN_EXTRAS as KNOWN_EXTRAS
from airflow_insight.settings import ConnectionLike as ConnectionLike
from airflow_insight.settings import ConnectionSettings
from airflow_insight.settings import base_url as base_url
from airflow_insight.settings import settings_from_connection as settings_from_connection
from airflow_insight.storage import is_object_storage_url, write_bytes
from airflow_insight.transport.probe import probe_server
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.socket_hub import JobWatch as JobWatch
from airflow_insight.transport.socket_hub import SocketHub
from airflow_insight.transport.sync_driver import SyncJobFollower

#: The logger of forwarded run-log lines (operator, sensor and trigger alike).
RUN_LOG_LOGGER = "insight.run_log"
#: What every forwarded run-log line starts with (why: ``docs/design.md#the-run-log-mark``).
RUN_LOG_PREFIX = "│ "


class RunLogSink:
    """Forward run-log lines into the task log: one record per line, on :data:`RUN_LOG_LOGGER`,
    each after :data:`RUN_LOG_PREFIX`. The one forwarding loop of every adapter."""

    def __init__(self) -> None:
        self._log = structlog.get_logger(RUN_LOG_LOGGER)

    def __call__(self, batch: RunLogLines) -> None:
        """The follower's line sink: log each line of ``batch``."""
        self.lines(batch.lines)

    def lines(self, lines: Sequence[str]) -> None:
        """Log each of ``lines`` as its own record."""
        for _ in self.in_chunks(lines, len(lines) or 1):
            pass

    def in_chunks(self, lines: Sequence[str], size: int) -> Iterator[int]:
        """Log ``lines`` as :meth:`lines` does, pausing after every ``size`` lines but the last:
        each pause yields how many are logged, so an event loop can run between chunks."""
        info = self._log.info  # Once per batch: the lazy proxy binds on each attribute access.
        for count, line in enumerate(lines, start=1):
            info(RUN_LOG_PREFIX + line)
            if count % size == 0 and count < len(lines):
                yield count


def job_result(settings: ConnectionSettings, outcome: JobOutcome) -> dict[str, Any]:
    """The task's result dict (XCom ``return_value``) for a job's outcome; URLs made absolute.

    The operator and the sensor both return it, so a downstream task reads either alike.
    """
    return {
        "compute_job_id": outcome.compute_job_id,
        "status": outcome.status,
        "model_status": outcome.model_status,
        "execution_attempts": outcome.execution_attempts,
        "result_url": settings.url(outcome.result_url) if outcome.result_url else None,
        "run_log_url": settings.url(outcome.run_log_url) if outcome.run_log_url else None,
    }


class EventLog:
    """Log each core event once, at its level: on its own logger when it names one
    (``logger_name``, e.g. the progress records on ``insight.progress``), else on ``fallback``.

    Run-log lines are not events to log here: they go to ``lines`` (a :class:`RunLogSink`), when
    given. ``stale`` says which events are old news by now (an operator's kill already reported
    them), logged at DEBUG so the task log keeps its order.
    """

    def __init__(
        self,
        fallback: logging.Logger | Any,
        stale: Callable[[Any], bool] | None = None,
        lines: Callable[[RunLogLines], None] | None = None,
    ) -> None:
        self._fallback = fallback
        self._named: dict[str, Any] = {}
        self._stale = stale
        self._lines = lines

    def __call__(self, event: Any) -> None:
        """The follower's event sink."""
        if isinstance(event, RunLogLines):
            if self._lines is not None:
                self._lines(event)
            return
        if self._stale is not None and self._stale(event):
            self._fallback.debug("Already reported by the kill: %s", event.describe())
            return
        name = getattr(event, "logger_name", None)
        logger = self._fallback if not isinstance(name, str) else self._logger(name)
        # The core reads no clock: an event that names a wall-clock time gets it here.
        describe_at = getattr(event, "describe_at", None)
        text = describe_at(time.time()) if callable(describe_at) else event.describe()
        logger.log(event.log_level, text)

    def _logger(self, name: str) -> Any:
        if name not in self._named:
            self._named[name] = structlog.get_logger(name)
        return self._named[name]


def airflow_error(exc: InsightError) -> BaseException:
    """What an Airflow task raises for ``exc``: errors a retry cannot fix fail it at once."""
    if exc.permanent:
        return AirflowFailException(f"{exc} (not retried: a retry cannot fix this)")
    return exc


class InsightHook(BaseHook):
    """Reads an Insight connection and hands out the REST client for it."""

    conn_name_attr = "insight_conn_id"
    default_conn_name = "insight_default"
    conn_type = "insight"
    hook_name = "FICO Xpress Insight"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The typed extras as form fields, for Airflow before 3.2 (see :mod:`.connection_form`)."""
        return connection_form.form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels, placeholders and hidden fields, for Airflow before 3.2."""
        return connection_form.field_behaviour()

    def __init__(self, insight_conn_id: str = default_conn_name) -> None:
        super().__init__()
        # Every token minted in this process (worker or triggerer) is masked in its logs.
        mask_announced_secrets()
        self.insight_conn_id = insight_conn_id
        self._settings: ConnectionSettings | None = None
        self._rest_client: InsightRestClient | None = None

    def get_settings(self) -> ConnectionSettings:
        """Read the Airflow connection (once per hook) and return its settings.

        A connection id Airflow does not know is a :class:`ConfigurationError` (a retry cannot
        create it), so the task fails at once.
        """
        if self._settings is None:
            try:
                connection = self.get_connection(self.insight_conn_id)
            except AirflowNotFoundException:
                raise ConfigurationError(
                    f"Airflow connection {self.insight_conn_id!r} does not exist; create it"
                    " (type insight) or pass the right insight_conn_id"
                ) from None
            self._settings = settings_from_connection(connection)
        return self._settings

    def get_rest_client(self) -> InsightRestClient:
        """The REST client for this connection, created once per hook (it caches the token)."""
        return self._rest(self.get_settings())

    def _rest(self, settings: ConnectionSettings) -> InsightRestClient:
        """The hook's one REST client, made from ``settings`` at the first call (async calls
        pass the settings they read with ``aget_connection``); thread-safe, so shared."""
        if self._rest_client is None:
            self._rest_client = InsightRestClient(settings)
        return self._rest_client

    def close(self) -> None:
        """Close the REST client (its pooled connections); a later call makes a new one."""
        rest, self._rest_client = self._rest_client, None
        if rest is not None:
            rest.close()

    def accepted_model_statuses(self, override: Collection[str] | None = None) -> frozenset[str]:
        """The model statuses counted as success: ``override`` if given, else the connection's."""
        if override is not None:
            return frozenset(override)
        return self.get_settings().accepted_model_statuses

    def job_result(self, outcome: JobOutcome) -> dict[str, Any]:
        """The task's result dict for ``outcome`` (see :func:`job_result`)."""
        return job_result(self.get_settings(), outcome)

    # ----------------------------------------------------------------------------- REST calls

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job document of ``job_id``; raises ``JobNotFound`` on 404."""
        return self.get_rest_client().get_job(job_id)

    def submit_job(
        self, request: Mapping[str, Any], payload: bytes | None = None
    ) -> dict[str, Any]:
        """Submit a job without following it (fire and forget, or a deferring task)."""
        return self.get_rest_client().submit_job(request, payload)

    def delete_job(self, job_id: str) -> None:
        """Cancel or delete ``job_id`` (REST ``DELETE``) without waiting."""
        self.get_rest_client().cancel_job(job_id)

    def download_results(self, outcome: JobOutcome, target: str | Path) -> str:
        """Write the job's results zip to ``target``, a local path (parents created) or an
        object-storage URL; what was written."""
        if outcome.result_url is None:
            raise ValueError(f"job {outcome.compute_job_id} has no result URL")
        return self._download(outcome.compute_job_id, outcome.result_url, target)

    def download_app_message_file(self, job_id: str, url: str, target: str | Path) -> str:
        """Write an ``APP_MESSAGE``'s ``appMessageFile`` (an INTSOL incumbent) to ``target``
        (a local path, parents created, or an object-storage URL); what was written."""
        return self._download(job_id, url, target)

    def _download(self, job_id: str, url: str, target: str | Path) -> str:
        data = self.get_rest_client().download(url, compute_job_id=job_id)
        return _write(target, data)

    def cancel_job_and_wait(self, job_id: str, wait_seconds: float) -> CancelResult:
        """Cancel ``job_id`` unless it already ended, then wait up to ``wait_seconds`` for a
        terminal status (the core's :class:`CancelFlow`); how it ended.

        Uses a REST client of its own: a kill runs in the signal handler on the thread it
        interrupted, which may be inside this hook's client holding its token lock (a mint);
        the shared client would deadlock there.
        """
        flow = CancelFlow(job_id, wait_seconds)
        with InsightRestClient(self.get_settings()) as rest:
            step = flow.start()
            while not isinstance(step, CancelResult):
                step = _cancel_step(rest, flow, step)
        return step

    # ----------------------------------------------------------------------------- following

    def follower_config(
        self,
        *,
        silence_limit_seconds: float,
        unreachable_limit_seconds: float | None = None,
        settings: ConnectionSettings | None = None,
    ) -> FollowerConfig:
        """The follower's knobs (operator and trigger); the unreachable limit as
        :meth:`unreachable_timer` reads it."""
        settings = settings or self.get_settings()
        limit = _unreachable_limit(unreachable_limit_seconds, settings)
        return FollowerConfig(
            silence_limit_seconds=silence_limit_seconds, unreachable_limit_seconds=limit
        )

    def unreachable_timer(self, unreachable_limit_seconds: float | None) -> UnreachableTimer:
        """The core's outage timer for a wait outside the follower (the poke-mode sensor):
        ``unreachable_limit_seconds`` None means the connection's, as for the follower."""
        settings = self.get_settings()
        limit = _unreachable_limit(unreachable_limit_seconds, settings)
        return UnreachableTimer(settings.server_name, limit)

    def job_follower(
        self,
        config: FollowerConfig,
        on_lines: RunLogSink,
        log: logging.Logger | Any = None,
        stale: Callable[[Any], bool] | None = None,
    ) -> SyncJobFollower:
        """A blocking follower on this connection (a context manager): ``open``, then ``submit``
        or ``follow`` (each may take ``app_messages=``, the job's solver-callback handler), then
        ``wait`` for the outcome. Run-log lines go to ``on_lines``; every other event of the
        core is logged once (see :class:`EventLog`, and its ``stale``), on ``log`` (default:
        the hook's) unless it names its own logger (the driver logs none)."""
        return SyncJobFollower(
            self.get_settings(),
            self.get_rest_client(),
            config=config,
            on_event=EventLog(log or self.log, stale, on_lines),
        )

    # ----------------------------------------------------------------------------- the end

    def job_end(
        self,
        outcome: JobOutcome,
        accepted_model_statuses: Collection[str] | None = None,
        log: logging.Logger | Any = None,
    ) -> dict[str, Any]:
        """The one end of a job for operator and sensor: the result dict, or the job's failure
        (``JobFailed``/``JobCancelled``) raised; a success without a model status is warned
        about on ``log`` (default: the hook's)."""
        accepted = self.accepted_model_statuses(accepted_model_statuses)
        warning = outcome.warning(accepted)
        if warning:
            (log or self.log).warning(warning)
        error = outcome.error(accepted)
        if error is not None:
            raise error
        return self.job_result(outcome)

    def forward_run_log_after(self, outcome: JobOutcome, last_forwarded_line: int) -> int:
        """Forward (to :data:`RUN_LOG_LOGGER`) the run-log lines after ``last_forwarded_line``
        read over REST (see :meth:`run_log_after`); how many were forwarded."""
        lines = self.run_log_after(outcome, last_forwarded_line)
        RunLogSink().lines(lines)
        return len(lines)

    def run_log_after(self, outcome: JobOutcome, last_forwarded_line: int) -> list[str]:
        """The job's run-log lines after ``last_forwarded_line``, read over REST.

        Fills the task log after a wait that did not stream (or missed) the end; a failed fetch
        is logged as a warning and gives no lines (the job's end does not depend on its log).
        No request is made when the outcome says the log is complete and ends at
        ``last_forwarded_line`` (the trigger already forwarded every line).
        """
        return self._run_log_after(self.get_settings(), outcome, last_forwarded_line)

    def _run_log_after(
        self, settings: ConnectionSettings, outcome: JobOutcome, last_forwarded_line: int
    ) -> list[str]:
        if outcome.run_log_url is None:
            return []
        if outcome.run_log_forwarded_through(last_forwarded_line):
            self.log.debug(
                "The run log of %s was forwarded in full; not fetching it again",
                outcome.compute_job_id,
            )
            return []
        try:
            rest = self._rest(settings)
            text = rest.get_run_log(outcome.run_log_url, compute_job_id=outcome.compute_job_id)
        except InsightError as exc:
            self.log.warning("Could not fetch the run log of %s: %s", outcome.compute_job_id, exc)
            return []
        return split_run_log(text)[last_forwarded_line + 1 :]

    def test_connection(self) -> tuple[bool, str]:
        """Mint a token and read it back; the REST API (and a UI that can test) shows the
        message. ``airflow connections test`` prints only "Connection success!" on success, so
        the message is also logged, which that command shows with ``--verbose``."""
        try:
            settings = self.get_settings()
        except ConfigurationError as exc:
            return False, str(exc)
        result = probe_server(settings)
        if result.ok:
            self.log.info("%s", result.message)
        return result.ok, result.message

    # ===================================================================== trigger side
    # What the trigger and the deferrable sensor's trigger need, so they import no transport
    # module. Everything here is safe on the triggerer's event loop: nothing blocks it.

    async def aget_settings(self) -> ConnectionSettings:
        """Read the connection with ``aget_connection`` (once per hook) and return its settings.

        A connection that does not exist is a :class:`ConfigurationError` (no retry helps).
        """
        if self._settings is None:
            try:
                connection = await get_async_connection(self.insight_conn_id)
            except AirflowNotFoundException:
                raise ConfigurationError(
                    f"Airflow connection {self.insight_conn_id!r} does not exist; create it"
                ) from None
            # Reading the extras masks them: a supervisor request, not safe on the loop itself.
            self._settings = await call_sync_sdk(settings_from_connection, connection)
        return self._settings

    def watch_job(
        self,
        settings: ConnectionSettings,
        job_id: str,
        *,
        execution_attempts: int,
        last_run_log_line: int,
        config: FollowerConfig,
        app_messages: AppMessageHandler | None = None,
    ) -> JobWatch:
        """Follow ``job_id`` on the running loop's shared progress socket of this connection.

        Every job followed on one connection (and one follower timing) in one event loop shares
        one socket; the watch's events end with one finish or one failure
        (:meth:`watch_failure`). Close the watch to stop following; the job keeps running.
        ``app_messages`` answers the job's solver callbacks (the trigger's progress handler).
        """
        return SocketHub.for_running_loop().watch(
            self.insight_conn_id,
            settings,
            job_id,
            execution_attempts=execution_attempts,
            last_run_log_line=last_run_log_line,
            config=config,
            app_messages=app_messages,
        )

    async def asubmit_and_watch(
        self,
        settings: ConnectionSettings,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        *,
        config: FollowerConfig,
        app_messages: AppMessageHandler | None = None,
    ) -> tuple[dict[str, Any], JobWatch]:
        """Submit a job on the running loop's shared progress socket of this connection, tagged
        with its ``connection-id`` (no solver callback waits for a ``SUBSCRIBE``), and watch it
        as :meth:`watch_job` does; the job document and the watch."""
        return await SocketHub.for_running_loop().submit_and_watch(
            self.insight_conn_id,
            settings,
            request,
            payload,
            config=config,
            app_messages=app_messages,
        )

    async def afind_job(
        self, settings: ConnectionSettings, job_ids: Iterable[str]
    ) -> tuple[str, dict[str, Any]] | None:
        """The first of ``job_ids`` the server has, with its document (off the loop); None when
        it has none of them."""

        def find() -> tuple[str, dict[str, Any]] | None:
            rest = self._rest(settings)
            for job_id in job_ids:
                try:
                    return job_id, rest.get_job(job_id)
                except JobNotFound:
                    continue
            return None

        return await asyncio.to_thread(find)

    @staticmethod
    def watch_failure(event: object) -> InsightError | None:
        """The error a watch event ends following with (a REST error no retry fixes), or None."""
        return event.error if isinstance(event, FollowFailed) else None

    async def acancel_job(self, settings: ConnectionSettings, job_id: str) -> None:
        """``DELETE`` the job off the loop without waiting (a gone job counts as done)."""
        await asyncio.to_thread(self._rest(settings).cancel_job, job_id)

    async def acancel_job_and_wait(
        self, settings: ConnectionSettings, job_id: str, wait_seconds: float, step_bound: float
    ) -> CancelResult:
        """:meth:`cancel_job_and_wait` off the loop, on the hook's client; each step (a read or
        the ``DELETE``) is bounded by ``step_bound`` seconds (a ``DELETE`` without an answer by
        then failed)."""
        flow = CancelFlow(job_id, wait_seconds)
        rest = self._rest(settings)
        step = flow.start()
        while not isinstance(step, CancelResult):
            try:
                async with asyncio.timeout(step_bound):
                    step = await asyncio.to_thread(_cancel_step, rest, flow, step)
            except TimeoutError:
                no_answer = f"no answer within {step_bound:g} s"
                if isinstance(step, SendDelete):
                    return flow.delete_failed(no_answer)
                step = flow.status_unreadable(no_answer)
        return step

    async def aforward_run_log_after(
        self, settings: ConnectionSettings, outcome: JobOutcome, last_forwarded_line: int
    ) -> int:
        """:meth:`forward_run_log_after` off the loop."""
        lines = await asyncio.to_thread(self._run_log_after, settings, outcome, last_forwarded_line)
        RunLogSink().lines(lines)  # logged on the loop, where the trigger's log is routed
        return len(lines)

    async def adownload(
        self, settings: ConnectionSettings, job_id: str, url: str, target: str
    ) -> str:
        """Download ``url`` of ``job_id`` to ``target`` off the loop; the target written.
        ``target`` is an object-storage URL (a triggerer has no worker disk); a failure to
        write is an ``OSError``."""

        def download() -> str:
            return _write(target, self._rest(settings).download(url, compute_job_id=job_id))

        return await asyncio.to_thread(download)

    @staticmethod
    def cancel_hint(settings: ConnectionSettings, job_id: str) -> str:
        """How a user cancels ``job_id`` by hand (for a log line that leaves it running)."""
        url = settings.url(f"{COMPUTE_JOBS_PATH}/{quote(job_id, safe='')}")
        return (
            f"To cancel it: cancel compute job {job_id} in Insight, or send DELETE {url}"
            " (REST API, with a bearer token)."
        )


def _unreachable_limit(override: float | None, settings: ConnectionSettings) -> float | None:
    """The unreachable limit of a task: its own argument, else the connection's."""
    return settings.unreachable_limit_seconds if override is None else override


def _cancel_step(rest: InsightRestClient, flow: CancelFlow, step: ReadStatus | SendDelete) -> Step:
    """Do one step of a cancel (blocking: a worker's thread, or a thread off the loop)."""
    if isinstance(step, SendDelete):
        try:
            rest.cancel_job(flow.job_id)
        except InsightError as exc:
            return flow.delete_failed(str(exc))
        return flow.deleted(time.monotonic())
    if step.delay_seconds > 0:
        time.sleep(step.delay_seconds)
    try:
        status = rest.get_job(flow.job_id).get("status")
    except JobNotFound:
        return flow.status_read(None, time.monotonic())
    except InsightError as exc:
        return flow.status_unreadable(str(exc))
    return flow.status_read(status if isinstance(status, str) else "", time.monotonic())


def _write(target: str | Path, data: bytes) -> str:
    """Write ``data`` to a local path (parents created) or an object-storage URL; what was
    written, as text."""
    if is_object_storage_url(target):
        return write_bytes(str(target), data)
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)
