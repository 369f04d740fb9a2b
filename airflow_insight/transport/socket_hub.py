"""One progress socket per Insight connection per event loop, shared by every job followed on it.

A triggerer following 1,000 jobs on one connection holds one socket, not 1,000: the first
:meth:`SocketHub.watch` for a connection opens an
:class:`~airflow_insight.transport.async_driver.AsyncJobFollower` (one core, one loop task, one
REST client) and every later watch on that connection follows its job on the same socket,
multiplexed by ``computeJobId``. Each watcher (a trigger) gets a :class:`JobWatch`: the events
of its job, in order, ending with exactly one
:class:`~airflow_insight.protocol.events.JobFinished` or
:class:`~airflow_insight.protocol.events.FollowFailed`; the watcher logs them itself, so the
lines land in *its* task's log.

The hub only routes: who hears of an event is the core's answer
(:func:`~airflow_insight.protocol.events.audience`: the job's watches, or every watch of the
socket), and which run-log lines a watch may take is its
:class:`~airflow_insight.protocol.runlog.WatchCursor`'s. How sockets are keyed, shared, closed
and retired: ``docs/design.md#the-socket-hub``.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Coroutine, Hashable, Mapping
from typing import Any

from airflow_insight.exceptions import InsightError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.events import FollowFailed
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.runlog import WatchCursor
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.async_driver import AsyncJobFollower
from airflow_insight.transport.driving import DriverEvent
from airflow_insight.transport.rest import InsightRestClient

_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SocketHub] = weakref.WeakKeyDictionary()


class JobWatch:
    """One watcher's view of one job: await :meth:`next_event` until the end arrives."""

    # One per followed job (5,000 in one triggerer): no per-instance __dict__.
    __slots__ = ("_closed", "_cursor", "_pending", "_shared", "_waiter", "_waiting", "job_id")

    def __init__(self, shared: _SharedSocket, job_id: str, last_run_log_line: int) -> None:
        self.job_id = job_id
        self._cursor = WatchCursor(last_run_log_line)
        self._shared = shared
        # Not an asyncio.Queue: one watcher awaits each watch, and a Queue's three deques and
        # Event cost ~3 KB per job (5,000 jobs in one triggerer); even one deque is a 760-byte
        # block. Events wait in a list until taken, so a cancelled ``next_event`` loses none;
        # the watcher drains it every turn, so taking from its front stays cheap.
        self._pending: list[DriverEvent] = []
        # Run-log lines in ``_pending``: bounded by the cursor (WatchCursor.overflows).
        self._waiting = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def last_run_log_line(self) -> int:
        """The last run-log line handed to this watch with no gap before it."""
        return self._cursor.last_run_log_line

    async def next_event(self) -> DriverEvent:
        """The next event of this job (``JobFinished``/``FollowFailed`` is the last one)."""
        while not self._pending:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        event = self._pending.pop(0)
        if isinstance(event, ev.RunLogLines):
            self._count_waiting(-len(event.lines))
        return event

    def close(self) -> None:
        """Stop watching (idempotent); the job keeps running on the server."""
        if not self._closed:
            self._closed = True
            self._count_waiting(-self._waiting)  # Its backlog no longer counts for the socket.
            self._shared.remove(self)

    def deliver(self, event: DriverEvent) -> None:
        """Queue one event; run-log batches and gaps as this watch's cursor says (runlog)."""
        if isinstance(event, ev.RunLogLines):
            overflow = self._cursor.overflows(event, self._waiting, self._shared.waiting)
            if overflow is not None:
                self._queue(overflow)  # Stopped: the resume reads the rest over REST.
                return
            batch = self._cursor.take(event)
            if batch is None:
                return
            self._count_waiting(len(batch.lines))
            event = batch
        elif isinstance(event, ev.RunLogGap) and not self._cursor.stops_at(event):
            return
        self._queue(event)

    def _count_waiting(self, lines: int) -> None:
        self._waiting += lines
        self._shared.waiting += lines

    def _queue(self, event: DriverEvent) -> None:
        self._pending.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _SharedSocket:
    """One driver and its watches."""

    def __init__(
        self, hub: SocketHub, key: Hashable, settings: ConnectionSettings, config: FollowerConfig
    ) -> None:
        self.hub = hub
        self.key = key
        self.rest = InsightRestClient(settings)
        self.driver = AsyncJobFollower(settings, self.rest, on_event=self._route, config=config)
        self.watches: dict[str, list[JobWatch]] = {}
        #: Run-log lines handed to the watches and not taken yet (bounded: runlog).
        self.waiting = 0
        #: The last event of each job that ended while watched, for watches that join late.
        self.ended: dict[str, DriverEvent] = {}
        #: Submits under way: the socket stays open for the watch that follows each.
        self._submitting = 0
        self._opening = hub.spawn(self._open())

    async def _open(self) -> None:
        try:
            await self.driver.open()
        except InsightError as exc:
            self._route(FollowFailed(None, exc, self.driver.follower.server))

    def add(
        self,
        job_id: str,
        execution_attempts: int,
        last_run_log_line: int,
        app_messages: AppMessageHandler | None,
    ) -> JobWatch:
        watch = JobWatch(self, job_id, last_run_log_line)
        if job_id in self.ended:
            watch.deliver(self.ended[job_id])
        else:
            # Every watch's follow reaches the core, which picks the handler that answers.
            self.driver.follow(
                job_id,
                execution_attempts=execution_attempts,
                last_run_log_line=last_run_log_line,
                app_messages=app_messages,
            )
        self.watches.setdefault(job_id, []).append(watch)
        return watch

    async def submit(self, request: Mapping[str, Any], payload: bytes | None) -> dict[str, Any]:
        """Submit a job tagged with this socket's ``connection-id`` once it is open.

        The server then sends the job's messages (a solver callback too) to this socket from
        the start; a socket that could not open submits untagged (the ``SUBSCRIBE`` after it
        is the fallback, §B9 #5).
        """
        self._submitting += 1
        try:
            await asyncio.shield(self._opening)
            cid = self.driver.follower.connection_id
            return await asyncio.to_thread(self.rest.submit_job, request, payload, cid)
        finally:
            self._submitting -= 1

    def release_if_unused(self) -> None:
        """Close the socket when no watch and no submit uses it (a submit that failed)."""
        if not self.watches and not self._submitting:
            self.hub.retire(self)
            self.hub.spawn(self._close())

    def remove(self, watch: JobWatch) -> None:
        watches = self.watches.get(watch.job_id, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self.watches.pop(watch.job_id, None)
            self.ended.pop(watch.job_id, None)
            self.driver.unfollow(watch.job_id)
        self.release_if_unused()

    async def _close(self) -> None:
        # The last watch may leave before the socket even opened: stop the opening first.
        self._opening.cancel()
        await asyncio.gather(self._opening, return_exceptions=True)
        await self.driver.close()
        await asyncio.to_thread(self.rest.close)

    def _route(self, event: DriverEvent) -> None:
        """Hand ``event`` to the watches the core says must hear of it (``ev.audience``)."""
        audience = ev.audience(event)
        if isinstance(audience, str):
            if isinstance(event, ev.JobFinished | FollowFailed):
                self.ended[audience] = event
            targets = list(self.watches.get(audience, []))
        elif audience is ev.Audience.EVERY_JOB:
            targets = [watch for watches in self.watches.values() for watch in watches]
        else:
            targets = []
        for watch in targets:
            watch.deliver(event)
        if isinstance(event, FollowFailed) and event.job_id is None:
            self.hub.retire(self)


class SocketHub:
    """The shared sockets of one event loop; get it with :meth:`for_running_loop`."""

    def __init__(self) -> None:
        self._sockets: dict[Hashable, _SharedSocket] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_running_loop(cls) -> SocketHub:
        """The hub of the running event loop (the triggerer runs every trigger on one loop)."""
        loop = asyncio.get_running_loop()
        hub = _HUBS.get(loop)
        if hub is None:
            hub = _HUBS[loop] = cls()
        return hub

    def watch(
        self,
        key: Hashable,
        settings: ConnectionSettings,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_run_log_line: int = -1,
        config: FollowerConfig | None = None,
        app_messages: AppMessageHandler | None = None,
    ) -> JobWatch:
        """Follow ``job_id`` on the shared socket of ``key`` (opened on first use).

        ``app_messages`` answers the job's solver callbacks (see ``protocol.appmessages``).
        """
        shared = self._shared(key, settings, config)
        return shared.add(job_id, execution_attempts, last_run_log_line, app_messages)

    async def submit_and_watch(
        self,
        key: Hashable,
        settings: ConnectionSettings,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        *,
        config: FollowerConfig | None = None,
        app_messages: AppMessageHandler | None = None,
    ) -> tuple[dict[str, Any], JobWatch]:
        """Submit a job on the shared socket of ``key`` (tagged with its ``connection-id``) and
        watch it there; its job document and the watch. A failed submit raises and leaves no
        socket open that nobody watches."""
        shared = self._shared(key, settings, config)
        try:
            document = await shared.submit(request, payload)
        except BaseException:
            shared.release_if_unused()
            raise
        return document, shared.add(str(request["id"]), 0, -1, app_messages)

    def _shared(
        self, key: Hashable, settings: ConnectionSettings, config: FollowerConfig | None
    ) -> _SharedSocket:
        config = config or FollowerConfig()
        full_key = (key, settings, config)
        shared = self._sockets.get(full_key)
        if shared is None:
            shared = self._sockets[full_key] = _SharedSocket(self, full_key, settings, config)
        return shared

    @property
    def socket_count(self) -> int:
        """How many shared sockets the hub holds now."""
        return len(self._sockets)

    def retire(self, shared: _SharedSocket) -> None:
        """Take a socket out of use: the next watch of its key opens a new one."""
        if self._sockets.get(shared.key) is shared:
            del self._sockets[shared.key]

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a hub task in a fresh context (its logs belong to no trigger) and keep it alive."""
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
