"""The asyncio driver: follow compute jobs over the progress WebSocket with ``websockets``.

The twin of :mod:`airflow_insight.transport.sync_driver`, method for method and with the same
behaviour for the same inputs, for the triggerer's event loop. A pump for the sans-I/O
:class:`~airflow_insight.protocol.follower.Follower`: wait until the core's next deadline, feed
it what arrived and the time, send what it queued, perform each call it asks for and hand back the
answer. It decides nothing; every event goes to ``on_event`` (the adapter logs it, the driver
logs none) and run-log batches to ``on_lines``.

Where it differs from the blocking twin, and why:

* :meth:`AsyncJobFollower.open` starts one loop task that drives the socket for every followed
  job; :meth:`AsyncJobFollower.wait` only awaits that job's future, so any number of coroutines
  (one per deferred task) can wait on one socket at once.
* A reader task moves every received frame into an inbox queue, so ``websockets`` keeps reading
  (and answering ping frames) while the loop waits; the loop gives the event loop a turn after
  every frame, or a backlog in the inbox would hold the pongs back (issue 11 #7).
* The REST calls the core asks for each run as a task of their own, in a thread, on the one REST
  client, so one slow call (a large run log, a server answering at the read timeout) never holds
  up the other jobs on the socket; the finished call comes back through the inbox and its answer
  goes to the core on the loop task (no locks). The core never asks for a call of a kind and job
  that is outstanding. Checks and fetches run in a pool of the driver's own,
  :data:`MAX_CONCURRENT_REST_CALLS` threads (not the default pool the whole triggerer shares);
  token mints go through ``asyncio.to_thread`` so that they never queue behind slow downloads.
  The calls share the client's ``requests.Session`` across threads: one host, so one urllib3
  pool (thread-safe); the token has its own lock in the client. :meth:`~AsyncJobFollower.close`
  cancels the tasks and shuts the pool down without waiting for a call still running.
* ``ReconnectDue`` (opening the socket) is performed in line: there is no socket to serve
  meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from airflow_insight.exceptions import InsightError, LocalProtocolError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.events import FollowFailed
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.wire import CONNECTION_ID_HEADER
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.driving import (
    DriverEvent,
    EventSink,
    LineSink,
    RestCall,
    not_followed,
    receive_timeout,
    rest_call,
)
from airflow_insight.transport.errors import (
    handshake_error,
    socket_open_failed,
    socket_open_timed_out,
)
from airflow_insight.transport.network import display_url, tls_context
from airflow_insight.transport.rest import InsightRestClient

# Re-exported for the adapters (interface 1): both now live in the core.
__all__ = ["AsyncJobFollower", "DriverEvent", "FollowFailed", "open_socket"]

log = logging.getLogger(__name__)

#: Opens the progress socket with a bearer token: ``(socket, connection-id)``.
SocketOpener = Callable[[ConnectionSettings, str], Awaitable[tuple[ClientConnection, str | None]]]
#: Largest message accepted from the server; a run-log batch can be long.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Most REST calls (checks, run-log fetches) one driver runs at once: the threads of its own
#: pool; below ``requests``' pool of 10 connections per host.
MAX_CONCURRENT_REST_CALLS = 8


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to ``websockets``: its DEBUG output prints the ``Authorization``
    header and ``UPDATE_TOKEN`` frames, so DEBUG stays off whatever the logging setup says."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WEBSOCKETS_LOG = _QuietLogger(logging.getLogger(f"{__name__}.websockets"))


async def open_socket(
    settings: ConnectionSettings, token: str
) -> tuple[ClientConnection, str | None]:
    """Open the progress WebSocket with the bearer token; return it and its ``connection-id``.

    Handshake failures become :mod:`airflow_insight.exceptions` types whose messages carry the
    HTTP status only (never a header, so never the token). permessage-deflate is offered.
    """
    url = settings.websocket_url
    # Building a TLS context reads the CA store from disk (tens of ms): not on the event loop.
    tls = await asyncio.to_thread(tls_context, settings) if url.startswith("wss:") else None
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            ssl=tls,
            open_timeout=settings.connect_timeout_seconds,
            # A dead server must not hold the loop for the library's default 10 s.
            close_timeout=1.0,
            max_size=MAX_MESSAGE_BYTES,
            logger=_WEBSOCKETS_LOG,
        )
    except InvalidStatus as exc:
        raise handshake_error(exc.response.status_code, url) from None
    except TimeoutError as exc:
        raise socket_open_timed_out(url) from exc
    except (InvalidHandshake, OSError) as exc:
        raise socket_open_failed(url, exc) from exc
    connection_id = ws.response.headers.get(CONNECTION_ID_HEADER) if ws.response else None
    return ws, connection_id or None


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    """A finished REST call, for the loop to hand to the core."""

    call_id: int
    task: asyncio.Task[Any]


#: What goes into the inbox: the socket and a frame (None once it closed, with the reason), a
#: finished REST call, or a bare None that wakes the loop (a job was followed or unfollowed).
_Item = tuple[ClientConnection, str | bytes | None, str] | _Answer | None


class AsyncJobFollower:
    """Follow compute jobs over one WebSocket session on asyncio; see the module docstring.

    Use as an async context manager (or await :meth:`close`)::

        async with AsyncJobFollower(settings, rest, on_lines=sink, on_event=log_it) as driver:
            await driver.open()
            document = await driver.submit(request, payload)
            outcome = await driver.wait(request["id"])
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        rest: InsightRestClient,
        *,
        on_lines: LineSink,
        config: FollowerConfig | None = None,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        opener: SocketOpener = open_socket,
    ) -> None:
        self._settings = settings
        self._rest = rest
        self._on_lines = on_lines
        self._on_event = on_event
        self._clock = clock
        self._opener = opener
        server = display_url(settings.base_url)
        self.follower = Follower(config, jitter_source=random.Random().random, server=server)
        self._ws: ClientConnection | None = None
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._events: collections.deque[ev.Event] = collections.deque()
        self._ends: dict[str, asyncio.Future[JobOutcome]] = {}
        self._open_error: InsightError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Threads start on first use; calls beyond the bound queue up in the pool.
        self._rest_pool = concurrent.futures.ThreadPoolExecutor(
            MAX_CONCURRENT_REST_CALLS, thread_name_prefix="insight-rest"
        )

    # ----------------------------------------------------------------------------- public

    async def open(self) -> None:
        """Get the first token (raises if it cannot be had), open the socket and start the
        loop task (in a fresh context, so its work never lands in the log of whichever task
        happened to open it)."""
        self._events.extend(self.follower.start(self._clock()))
        while self._events:  # In line: the loop task does not run yet.
            event = self._events.popleft()
            self._emit(event)
            if isinstance(event, ev.TokenRefreshDue):
                self._events.extend(await self._answer_now(event))
            else:
                self._events.extend(await self._handle(event))
        if self._open_error is not None:
            raise self._open_error
        self._spawn(self._run())

    async def submit(
        self,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        *,
        app_messages: AppMessageHandler | None = None,
    ) -> dict[str, Any]:
        """Submit a job with this socket's ``connection-id`` and follow it; its job document."""
        cid = self.follower.connection_id
        document = await asyncio.to_thread(self._rest.submit_job, request, payload, cid)
        self.follow(str(request["id"]), app_messages=app_messages)
        return document

    def follow(
        self,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        app_messages: AppMessageHandler | None = None,
    ) -> None:
        """Follow an existing job (re-attach), resuming after ``last_run_log_line``."""
        self._events.extend(
            self.follower.follow(
                job_id,
                execution_attempts=execution_attempts,
                last_run_log_line=last_run_log_line,
                now=self._clock(),
                app_messages=app_messages,
            )
        )
        self._ends.setdefault(job_id, asyncio.get_running_loop().create_future())
        self._inbox.put_nowait(None)

    def unfollow(self, job_id: str) -> None:
        """Stop following a job (its waiter left); the job keeps running on the server."""
        self.follower.unfollow(job_id)
        future = self._ends.pop(job_id, None)
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # Retrieved: nobody waits for it any more.
        elif future is not None:
            future.cancel()
        self._inbox.put_nowait(None)

    async def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Await the end of ``job_id``; its outcome, or None after the timeout."""
        future = self._ends.get(job_id)
        if future is None:
            raise not_followed(job_id)
        try:
            async with asyncio.timeout(timeout_seconds):
                return await asyncio.shield(future)
        except TimeoutError:
            return None

    async def close(self) -> None:
        """Stop the loop and close the socket (the jobs keep running on the server)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Also retrieves the result of calls that finished but were not fed to the core.
        await asyncio.gather(*tasks, return_exceptions=True)
        # A thread still in a REST call ends with it (bounded); its answer is dropped.
        self._rest_pool.shutdown(wait=False, cancel_futures=True)
        await self._close_socket()

    async def __aenter__(self) -> AsyncJobFollower:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------------------- the loop

    async def _run(self) -> None:
        try:
            while True:
                await self._step()
        except Exception as exc:
            # A bug here must not leave every waiter hanging: they all get it, as data.
            log.exception("The Insight progress driver stopped")
            error = LocalProtocolError(f"internal error in the Insight progress driver: {exc!r}")
            self._emit(FollowFailed(None, error))
            self._settle(None, error)

    async def _step(self) -> None:
        """Send what is queued, wait for one item or the next deadline, handle the events."""
        await self._send_queued()
        if not self._events:
            wait = receive_timeout(self._clock(), self.follower.next_deadline())
            try:
                async with asyncio.timeout(wait):
                    item = await self._inbox.get()
            except TimeoutError:
                item = None
            if isinstance(item, _Answer):
                self._events.extend(self._answered(item))
            elif item is not None and item[0] is self._ws:
                _, data, reason = item
                if data is None:
                    await self._lost(reason)
                else:
                    self._events.extend(self.follower.receive_text(data, self._clock()))
            self._events.extend(self.follower.tick(self._clock()))
        while self._events:
            event = self._events.popleft()
            self._emit(event)
            self._events.extend(await self._handle(event))
            await self._send_queued()  # Pongs and answers go out before the next event's work.
        # Give the loop a turn after every frame. With a backlog in the inbox, get() returns
        # at once and nothing above suspends, so without this the loop would forward the whole
        # backlog before ``websockets`` could read the next ping and answer it (issue 11 #7).
        await asyncio.sleep(0)

    async def _send_queued(self) -> None:
        for text in self.follower.data_to_send():
            if self._ws is None:
                return
            try:
                await self._ws.send(text)
            except (ConnectionClosed, OSError) as exc:
                await self._lost(f"sending failed: {type(exc).__name__}")

    async def _read(self, ws: ClientConnection) -> None:
        """Move every frame of ``ws`` into the inbox; then say it closed, and why."""
        reason = "closed by the server"
        try:
            async for data in ws:
                self._inbox.put_nowait((ws, data, ""))
        except ConnectionClosed as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self._inbox.put_nowait((ws, None, reason))

    # ----------------------------------------------------------------------------- events

    async def _handle(self, event: ev.Event) -> list[ev.Event]:
        """Hand a batch to the sink, settle an end, or perform a call (REST answers come back
        later through the inbox: see :meth:`_start_call`)."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._settle(event.job_id, event.outcome)
            case ev.FollowFailed():
                self._settle(event.job_id, event.error)
            case ev.ReconnectDue():
                return await self._connect(event)
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue():
                self._start_call(event)
        return []

    async def _answer_now(self, call: ev.TokenRefreshDue) -> list[ev.Event]:
        try:
            token = await asyncio.to_thread(rest_call(self._rest, call))
        except InsightError as exc:
            return self.follower.call_failed(call.call_id, exc, self._clock())
        return self.follower.call_succeeded(call.call_id, token, self._clock())

    async def _connect(self, call: ev.ReconnectDue) -> list[ev.Event]:
        await self._close_socket()
        assert call.token is not None  # The core always hands the token with the call.
        try:
            ws, connection_id = await self._opener(self._settings, call.token.value)
        except InsightError as exc:
            return self.follower.call_failed(call.call_id, exc, self._clock())
        self._ws = ws
        self._spawn(self._read(ws))
        return self.follower.call_succeeded(call.call_id, connection_id, self._clock())

    async def _lost(self, reason: str) -> None:
        await self._close_socket()
        self._events.extend(self.follower.connection_lost(self._clock(), reason))

    # ----------------------------------------------------------------------------- REST calls

    def _start_call(self, call: RestCall) -> None:
        """Run the call off the loop as a task of its own; it comes back through the inbox."""
        task = self._spawn(self._call_rest(call))
        task.add_done_callback(lambda done: self._inbox.put_nowait(_Answer(call.call_id, done)))

    async def _call_rest(self, call: RestCall) -> Any:
        perform = rest_call(self._rest, call)
        if isinstance(call, ev.TokenRefreshDue):
            # Not in the pool: a token mint must never queue behind slow downloads.
            return await asyncio.to_thread(perform)
        return await asyncio.get_running_loop().run_in_executor(self._rest_pool, perform)

    def _answered(self, answer: _Answer) -> list[ev.Event]:
        """Feed a finished REST call to the core, on the loop task like every core call."""
        if answer.task.cancelled():
            return []  # Only close() cancels calls.
        error = answer.task.exception()
        if isinstance(error, InsightError):
            return self.follower.call_failed(answer.call_id, error, self._clock())
        if error is not None:
            raise error
        return self.follower.call_succeeded(answer.call_id, answer.task.result(), self._clock())

    # ----------------------------------------------------------------------------- helpers

    def _emit(self, event: ev.Event) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _settle(self, job_id: str | None, result: JobOutcome | InsightError) -> None:
        """Resolve a job's future (``job_id`` None with an error: every job, and open())."""
        if job_id is None:
            if isinstance(result, InsightError):
                self._open_error = result
                for job in list(self._ends):
                    self._settle(job, result)
            return
        future = self._ends.get(job_id)
        if future is None or future.done():
            return
        if isinstance(result, InsightError):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _close_socket(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()
