"""The asyncio driver: follow compute jobs over the progress WebSocket with ``websockets``.

The twin of :mod:`airflow_insight.transport.sync_driver`, method for method and with the same
behaviour for the same inputs, for the triggerer's event loop. A pump for the sans-I/O
:class:`~airflow_insight.protocol.follower.Follower`: wait until the core's next deadline, feed it
what arrived and the time, send the frames it returns, perform each call it asks for and hand back
the answer. It decides nothing; every event goes to ``on_event`` (the adapter logs it, the driver
logs none) and run-log batches to ``on_lines``.

Where it differs from the blocking twin, and why:

* :meth:`AsyncJobFollower.open` starts one loop task that drives the socket for every followed
  job; :meth:`AsyncJobFollower.wait` only awaits that job's future, so any number of coroutines
  (one per deferred task) can wait on one socket at once.
* A reader task moves every received frame into an inbox (:mod:`.async_inbox`), so ``websockets``
  keeps reading (and answering ping frames) while the loop waits; the loop gives the event loop a
  turn after every frame, or a backlog in the inbox would hold the pongs back. The inbox is bounded
  as :mod:`airflow_insight.protocol.inbox` decides: under a flood the sink cannot keep up with, the
  reader waits for room (``websockets`` then stops reading, and TCP slows the server); it resumes
  as soon as the loop takes a frame. A frame the core says needs an immediate reply
  (:func:`~airflow_insight.protocol.replies.needs_immediate_reply`: a JSON ``PING``, an
  ``APP_MESSAGE``) is handed to the core by the reader task itself, which sends the reply at
  once; its events take the frame's place in the inbox (one thread: no lock).
* The REST calls the core asks for each run off the loop, on their own (:mod:`.async_calls`):
  one slow call never holds up the other jobs on the socket; the finished call comes back
  through the inbox, ahead of any frames waiting there, and its answer goes to the core on the
  loop task (no locks).
* ``ReconnectDue`` (opening the socket) is performed in line: there is no socket to serve
  meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from airflow_insight.exceptions import InsightError, LocalProtocolError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.events import FollowFailed
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.inbox import INBOX_LIMIT_CHARS
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.replies import needs_immediate_reply
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.async_calls import Answer, RestCalls
from airflow_insight.transport.async_handshake import SocketOpener, open_socket
from airflow_insight.transport.async_inbox import AsyncInbox
from airflow_insight.transport.driving import (
    DriverEvent,
    EventSink,
    LineSink,
    not_followed,
    receive_timeout,
    split_outputs,
)
from airflow_insight.transport.rest import InsightRestClient

# Re-exported for the adapters (interface 1): both now live in the core.
__all__ = ["AsyncJobFollower", "DriverEvent", "FollowFailed", "open_socket"]

log = logging.getLogger(__name__)

#: Most REST calls (checks, run-log fetches) one driver runs at once: the threads of its own
#: pool; below ``requests``' pool of 10 connections per host.
MAX_CONCURRENT_REST_CALLS = 8


#: What goes into the inbox: the socket and a frame (the events of one the reader answered; None
#: once it closed, with the reason), a finished REST call, or a bare None that wakes the loop (a
#: job was followed or unfollowed).
_Item = tuple[ClientConnection, str | bytes | list[ev.Event] | None, str] | Answer | None


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
        self.follower = Follower(
            config, jitter_source=random.Random().random, server=settings.server_name
        )
        self._ws: ClientConnection | None = None
        self._inbox: AsyncInbox[_Item] = AsyncInbox(INBOX_LIMIT_CHARS)
        self._events: collections.deque[ev.Event] = collections.deque()
        # What follow() and unfollow() got from the core, for the loop task to feed.
        self._held: list[ev.Output] = []
        self._ends: dict[str, asyncio.Future[JobOutcome]] = {}
        self._open_error: InsightError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._calls = RestCalls(
            rest,
            spawn=self._spawn,
            on_answer=self._inbox.put_urgent,
            max_workers=MAX_CONCURRENT_REST_CALLS,
        )

    # ----------------------------------------------------------------------------- public

    async def open(self) -> None:
        """Get the first token (raises if it cannot be had), open the socket and start the
        loop task (in a fresh context, so its work never lands in the log of whichever task
        happened to open it)."""
        await self._feed(self.follower.start(self._clock()))
        while self._events:  # In line: the loop task does not run yet.
            event = self._events.popleft()
            self._emit(event)
            if isinstance(event, ev.TokenRefreshDue):
                await self._answer_now(event)
            else:
                await self._handle(event)
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
        self._held.extend(
            self.follower.follow(
                job_id,
                execution_attempts=execution_attempts,
                last_run_log_line=last_run_log_line,
                now=self._clock(),
                app_messages=app_messages,
            )
        )
        self._ends.setdefault(job_id, asyncio.get_running_loop().create_future())
        self._inbox.put_urgent(None)

    def unfollow(self, job_id: str) -> None:
        """Stop following a job (its waiter left); the job keeps running on the server."""
        self._held.extend(self.follower.unfollow(job_id))
        future = self._ends.pop(job_id, None)
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # Retrieved: nobody waits for it any more.
        elif future is not None:
            future.cancel()
        self._inbox.put_urgent(None)

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
        self._calls.close()
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
            self._emit(FollowFailed(None, error, self.follower.server))
            self._settle(None, error)

    async def _step(self) -> None:
        """Wait for one item or the next deadline, feed it and the time, handle the events."""
        if self._held:
            held, self._held = self._held, []
            await self._feed(held)
        if not self._events:
            wait = receive_timeout(self._clock(), self.follower.next_deadline())
            item = await self._inbox.get(wait)
            if isinstance(item, Answer):
                await self._feed(self._answered(item))
            elif item is not None and item[0] is self._ws:
                _, data, reason = item
                if data is None:
                    await self._lost(reason)
                elif isinstance(data, list):
                    self._events.extend(data)  # Answered by the reader task already.
                else:
                    await self._feed(self.follower.receive_text(data, self._clock()))
            await self._feed(self.follower.tick(self._clock()))
        while self._events:
            event = self._events.popleft()
            self._emit(event)
            await self._handle(event)
        # Give the loop a turn after every frame. With a backlog in the inbox, get() returns
        # at once and nothing above suspends, so without this the loop would forward the whole
        # backlog before ``websockets`` could read the next ping and answer it.
        await asyncio.sleep(0)

    async def _feed(self, outputs: list[ev.Output]) -> None:
        """Feed what a core input returned: its frames go out at once, its events queue."""
        texts, events = split_outputs(outputs)
        self._events.extend(events)
        for text in texts:
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
                if not needs_immediate_reply(data):
                    await self._inbox.room_for(len(data), lambda: ws is self._ws)
                    self._inbox.put_frame((ws, data, ""), len(data))
                    continue
                if ws is not self._ws:
                    break  # Replaced or closed meanwhile.
                # Answered here, ahead of the lines waiting in the inbox.
                texts, events = split_outputs(self.follower.receive_text(data, self._clock()))
                self._inbox.put_frame((ws, events, ""))
                for text in texts:
                    await ws.send(text)
        except (ConnectionClosed, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self._inbox.put_frame((ws, None, reason))

    # ----------------------------------------------------------------------------- events

    async def _handle(self, event: ev.Event) -> None:
        """Hand a batch to the sink, settle an end, or perform a call (REST answers come back
        later through the inbox: see :mod:`.async_calls`)."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._settle(event.job_id, event.outcome)
            case ev.FollowFailed():
                self._settle(event.job_id, event.error)
            case ev.ReconnectDue():
                await self._connect(event)
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue():
                self._calls.start(event)

    async def _answer_now(self, call: ev.TokenRefreshDue) -> None:
        try:
            token = await self._calls.now(call)
        except InsightError as exc:
            await self._feed(self.follower.call_failed(call.call_id, exc, self._clock()))
        else:
            await self._feed(self.follower.call_succeeded(call.call_id, token, self._clock()))

    async def _connect(self, call: ev.ReconnectDue) -> None:
        await self._close_socket()
        assert call.token is not None  # The core always hands the token with the call.
        try:
            ws, connection_id = await self._opener(self._settings, call.token.value)
        except InsightError as exc:
            await self._feed(self.follower.call_failed(call.call_id, exc, self._clock()))
            return
        self._ws = ws
        self._spawn(self._read(ws))
        await self._feed(self.follower.call_succeeded(call.call_id, connection_id, self._clock()))

    async def _lost(self, reason: str) -> None:
        await self._close_socket()
        await self._feed(self.follower.connection_lost(self._clock()))

    def _answered(self, answer: Answer) -> list[ev.Output]:
        """Feed a finished REST call to the core, on the loop task like every core call."""
        answered = answer.result()
        if answered is None:
            return []  # Only close() cancels calls.
        result, error = answered
        if error is not None:
            return self.follower.call_failed(answer.call_id, error, self._clock())
        return self.follower.call_succeeded(answer.call_id, result, self._clock())

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
