"""The asyncio driver: follow compute jobs over the progress WebSocket with ``websockets``.

A pump for the sans-I/O :class:`~airflow_insight.protocol.follower.Follower`: take one item from
the inbox (or wait until the core's next deadline), feed it and the time to the core, send the
frames it returns, hand every event to the one sink, and perform each call it asks for. It
decides nothing. Its twin, method for method, is :mod:`.sync_driver`; what they share is in
:mod:`.driving`. Where this one differs, and why:

* :meth:`AsyncJobFollower.open` starts one loop task that drives the socket for every followed
  job; :meth:`AsyncJobFollower.wait` only waits for that job's end, so any number of coroutines
  (one per deferred task) can wait on one socket at once.
* A reader task moves every frame into the inbox (:mod:`.async_inbox`, bounded as
  :mod:`airflow_insight.protocol.inbox` decides); ``websockets`` answers ping frames, and a frame
  that needs an immediate reply is handed to the core by the reader task (one thread: no lock).
  The loop gives the event loop a turn after every item, or a backlog would hold the pongs back.
* REST calls run off the loop, each on its own (:mod:`.async_calls`): one slow call never holds
  up the other jobs; the answer comes back through the inbox ahead of any frames. Only while
  ``open`` runs (no loop task yet) are they performed in line.
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
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.inbox import INBOX_LIMIT_CHARS
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.replies import needs_immediate_reply
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import driving as d
from airflow_insight.transport.async_calls import Answer, RestCalls
from airflow_insight.transport.async_handshake import SocketOpener, open_socket
from airflow_insight.transport.async_inbox import AsyncInbox
from airflow_insight.transport.rest import InsightRestClient

__all__ = ["AsyncJobFollower", "open_socket"]

log = logging.getLogger(__name__)

#: Most REST calls (checks, run-log fetches) one driver runs at once: the threads of its own
#: pool; below ``requests``' pool of 10 connections per host.
MAX_CONCURRENT_REST_CALLS = 8


class AsyncJobFollower(d.Following):
    """Follow compute jobs over one WebSocket session on asyncio; see the module docstring.

    Use as an async context manager (or await :meth:`close`)::

        async with AsyncJobFollower(settings, rest, on_event=sink) as driver:
            await driver.open()
            document = await driver.submit(request, payload)
            outcome = await driver.wait(request["id"])
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        rest: InsightRestClient,
        *,
        on_event: d.EventSink,
        config: FollowerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        opener: SocketOpener = open_socket,
    ) -> None:
        self._settings = settings
        self._rest = rest
        self._on_event = on_event
        self._clock = clock
        self._opener = opener
        self.follower = Follower(
            config, jitter_source=random.Random().random, server=settings.server_name
        )
        self._ws: ClientConnection | None = None
        # One thread feeds the core: nothing to lock.
        self._core = contextlib.nullcontext()
        self._inbox: AsyncInbox[d.InboxItem | Answer] = AsyncInbox(INBOX_LIMIT_CHARS)
        self._events: collections.deque[ev.Event] = collections.deque()
        self._ends = d.Ends()
        # Set (and replaced) whenever an end is recorded: wakes the waiters.
        self._ended = asyncio.Event()
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
        await self._feed(self.follower.start)
        await self._drain(in_line=True)
        if self._ends.session_error is not None:
            raise self._ends.session_error
        self._spawn(self._run())

    async def submit(
        self,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        *,
        app_messages: AppMessageHandler | None = None,
    ) -> dict[str, Any]:
        """Submit a job with this socket's ``connection-id`` and follow it; its job document."""
        connection_id = self.follower.connection_id
        document = await asyncio.to_thread(self._rest.submit_job, request, payload, connection_id)
        self.follow(str(request["id"]), app_messages=app_messages)
        return document

    async def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Wait for the end of ``job_id``; its outcome, or None after the timeout."""
        try:
            async with asyncio.timeout(timeout_seconds):
                while not self._ends.ended(job_id):
                    await self._ended.wait()
        except TimeoutError:
            return None
        return self._ends.outcome(job_id)

    async def close(self) -> None:
        """Stop the loop and close the socket (the jobs keep running on the server)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
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
            self._on_event(ev.FollowFailed(None, error, self.follower.server))
            self._ends.fail_all(error)
            self._wake_waiters()

    async def _step(self) -> None:
        """Take one item or wait for the next deadline, feed it and the time, drain the events."""
        wait = d.receive_timeout(self._clock(), self.follower.next_deadline())
        item = await self._inbox.get(wait)
        if isinstance(item, Answer):
            item = item.answer()  # Raises a bug of the call here, on the loop task.
        if item is not None:
            await self._take(item)
        await self._feed(self.follower.tick)
        await self._drain()
        # Give the loop a turn after every item. With a backlog in the inbox, get() returns
        # at once and nothing above suspends, so without this the loop would forward the whole
        # backlog before ``websockets`` could read the next ping and answer it.
        await asyncio.sleep(0)

    async def _take(self, item: d.InboxItem) -> None:
        """Feed one inbox item to the core (items of a socket no longer in use mean nothing)."""
        match item:
            case d.CallAnswer():
                await self._feed(item.core_input(self.follower))
            case d.Fed():
                await self._feed(lambda now: item.outputs)
            case d.Frame() if item.socket is self._ws:
                await self._feed(lambda now: self.follower.receive_text(item.text, now))
            case d.Answered() if item.socket is self._ws:
                self._events.extend(item.events)
            case d.Closed() if item.socket is self._ws:
                await self._lost()

    async def _feed(self, core_input: d.CoreInput) -> None:
        """Feed the core one input: its frames go out at once, its events queue."""
        texts, events = d.split_outputs(core_input(self._clock()))
        self._events.extend(events)
        for text in texts:
            if self._ws is None:
                return
            try:
                await self._ws.send(text)
            except (ConnectionClosed, OSError):
                await self._lost()
                return

    async def _drain(self, *, in_line: bool = False) -> None:
        """Hand every queued event to the sink, then do what it asks (``in_line``: perform REST
        calls here and now, as ``open`` must before the loop task runs)."""
        while self._events:
            event = self._events.popleft()
            self._on_event(event)
            await self._handle(event, in_line=in_line)

    async def _handle(self, event: ev.Event, *, in_line: bool = False) -> None:
        """Record an end, or perform a call (its answer comes back through the inbox)."""
        match event:
            case ev.ReconnectDue():
                await self._connect(event)
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue() if in_line:
                await self._take(await self._calls.now(event))
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue():
                self._calls.start(event)
            case _:
                if self._ends.record(event):
                    self._wake_waiters()

    async def _connect(self, call: ev.ReconnectDue) -> None:
        """Open a new socket and start its reader; the core gets its ``connection-id``."""
        await self._close_socket()
        assert call.token is not None  # The core always hands the token with the call.
        try:
            ws, connection_id = await self._opener(self._settings, call.token.value)
        except InsightError as exc:
            await self._take(d.CallAnswer(call.call_id, error=exc))
            return
        self._ws = ws
        self._spawn(self._read(ws))
        await self._take(d.CallAnswer(call.call_id, connection_id))

    async def _read(self, ws: ClientConnection) -> None:
        """The reader task: queue every frame of ``ws``, or hand one that cannot wait (the core
        says which) to the core at once; then say the socket closed."""
        with contextlib.suppress(ConnectionClosed, OSError):
            async for data in ws:
                if not needs_immediate_reply(data):
                    await self._inbox.room_for(len(data), lambda: ws is self._ws)
                    self._inbox.put_frame(d.Frame(ws, data), len(data))
                    continue
                if ws is not self._ws:
                    break  # Replaced or closed meanwhile: its frames mean nothing to the core.
                outputs = self.follower.receive_text(data, self._clock())
                texts, events = d.split_outputs(outputs)
                self._inbox.put_frame(d.Answered(ws, events))
                for text in texts:
                    await ws.send(text)
        self._inbox.put_frame(d.Closed(ws))

    async def _lost(self) -> None:
        """The socket in use closed or broke: close it and tell the core."""
        await self._close_socket()
        await self._feed(self.follower.connection_lost)

    async def _close_socket(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()

    # ----------------------------------------------------------------------------- helpers

    def _wake_waiters(self) -> None:
        ended, self._ended = self._ended, asyncio.Event()
        ended.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
