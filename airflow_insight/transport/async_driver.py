"""The asyncio driver: follow compute jobs over the progress WebSocket with ``websockets``.

The twin of :mod:`airflow_insight.transport.sync_driver`, method for method, for the triggerer's
event loop. It only moves bytes and time for the sans-I/O
:class:`~airflow_insight.protocol.follower.Follower`: wait until the core's next deadline, feed it
what arrived and the time, send what it queued, answer each event in one line.

Where it differs from the blocking twin, and why:

* :meth:`AsyncJobFollower.open` starts one loop task that drives the socket for every followed
  job; :meth:`AsyncJobFollower.wait` only awaits that job's future, so any number of coroutines
  (one per deferred task) can wait on one socket at once.
* A reader task moves every received frame into an inbox queue, so ``websockets`` keeps reading
  (and answering ping frames with pongs) while the loop waits on a REST answer.
* The REST calls the core asks for (``TokenRefreshDue``, ``ReconcileDue``, ``RunLogFetchDue``)
  each run as a task of their own, in a thread, on the one REST client, so one
  slow call (a large run log, a server answering at the read timeout) never holds up the events
  of every other job on the socket. The blocking twin answers them in line; here
  :meth:`AsyncJobFollower._handle` starts the call and its finished task comes back through the
  inbox, where the same method as the twin's (``_reconcile``...) feeds it to the core, reading
  ``call.result()`` where the twin calls REST. So the core is only ever touched by the loop task
  (no locks) and each answer takes its turn among the frames. At most one call per kind and job
  is in flight (the core asks again after its silence limit; that request is dropped while the
  first is out, and its answer serves both). Checks and fetches run in a thread pool of the
  driver's own, :data:`MAX_CONCURRENT_REST_CALLS` threads: not ``asyncio.to_thread``, whose
  default pool (``min(32, CPUs + 4)`` threads) the whole triggerer shares, so a server answering
  at the read timeout could otherwise take every thread from every other trigger. The token
  refresh (one at a time) goes through ``asyncio.to_thread`` as before, so that it never queues
  behind slow downloads. Each call is bounded by the REST client (connect and read timeouts,
  bounded retries); :meth:`~AsyncJobFollower.close` cancels the tasks, awaits them and shuts the
  pool down without waiting for a call still running (its answer is dropped).
  The calls share the client's ``requests.Session`` across threads: that is safe for this use
  (one host, so one urllib3 pool, which is thread-safe; the cookie jar locks itself; the token
  has its own lock in the client), and the bound keeps us below the pool's 10 connections.
* An answer can now come after frames that arrived while it was out, so a permanent REST error
  for a job that ended meanwhile is only logged (its end stands), and ``ReconnectDue`` is still
  answered in line (no socket to keep serving meanwhile).
* A REST error a retry cannot fix fails the job(s) it concerns (their futures raise it, and
  ``on_event`` gets a :class:`FollowFailed`) instead of ending the loop: other jobs on the same
  socket keep going.
* A transient failure to get the first token does not fail :meth:`open`: the core's reconnect
  backoff keeps trying, as after any later failure.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from airflow_insight.exceptions import (
    AuthenticationError,
    InsightError,
    JobNotFound,
    LocalProtocolError,
)
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.wire import CONNECTION_ID_HEADER
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.driving import LineSink, receive_timeout
from airflow_insight.transport.errors import (
    handshake_error,
    socket_open_failed,
    socket_open_timed_out,
)
from airflow_insight.transport.network import tls_context
from airflow_insight.transport.rest import InsightRestClient, Token

log = logging.getLogger(__name__)

#: Opens the progress socket with a bearer token: ``(socket, connection-id)``.
SocketOpener = Callable[[ConnectionSettings, str], Awaitable[tuple[ClientConnection, str | None]]]
#: Largest message accepted from the server; a run-log batch can be long.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Most REST calls (checks, run-log fetches) one driver runs at once: the threads of its own
#: pool; below ``requests``' pool of 10 connections per host.
MAX_CONCURRENT_REST_CALLS = 8

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class FollowFailed:
    """A REST error a retry cannot fix ended following a job (``job_id`` None: every job)."""

    log_level: ClassVar[int] = logging.ERROR

    job_id: str | None
    error: InsightError

    def describe(self) -> str:
        """One log line (exception messages never carry secrets)."""
        return f"Following Insight compute job {self.job_id or '(all)'} failed: {self.error}"


DriverEvent = ev.Event | FollowFailed


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


#: Which REST call: its kind and job (None: the token), at most one in flight per key.
_CallKey = tuple[str, str | None]
_TOKEN_CALL: _CallKey = ("token", None)


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    """A finished REST call, and the method that feeds its result to the core."""

    key: _CallKey
    call: asyncio.Task[Any]
    feed: Callable[[asyncio.Task[Any]], list[ev.Event]]


#: What goes into the inbox: the socket and a frame (None once it closed, with the reason), a
#: finished REST call, or a bare None that wakes the loop (a job was followed or unfollowed).
_Item = tuple[ClientConnection, str | bytes | None, str] | _Answer | None


class AsyncJobFollower:
    """Follow compute jobs over one WebSocket session on asyncio; see the module docstring.

    Use as an async context manager (or await :meth:`close`)::

        async with AsyncJobFollower(settings, rest, on_lines=sink) as driver:
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
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        opener: SocketOpener = open_socket,
        on_event: Callable[[DriverEvent], None] | None = None,
    ) -> None:
        self._settings = settings
        self._rest = rest
        self._on_lines = on_lines
        self._log = logger or log
        self._clock = clock
        self._opener = opener
        self._on_event = on_event
        self.follower = Follower(config, jitter_source=random.Random().random)
        self._ws: ClientConnection | None = None
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._events: collections.deque[ev.Event] = collections.deque()
        self._outcomes: dict[str, asyncio.Future[JobOutcome]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: REST calls in flight or not yet fed to the core, by key.
        self._calls: dict[_CallKey, asyncio.Task[Any]] = {}
        # Threads start on first use; calls beyond the bound queue up in the pool.
        self._rest_pool = concurrent.futures.ThreadPoolExecutor(
            MAX_CONCURRENT_REST_CALLS, thread_name_prefix="insight-rest"
        )

    # ----------------------------------------------------------------------------- public

    async def open(self) -> None:
        """Get a token, open the socket and start the loop task (in a fresh context, so its
        log lines never land in the log of whichever task happened to open it)."""
        try:
            self._use_token(await asyncio.to_thread(self._rest.current_token))
        except InsightError as exc:
            if exc.permanent:
                raise
            self._log.warning("Getting an Insight token failed (%s); retrying soon", exc)
        await self._connect()
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
        self.follower.follow(
            job_id,
            execution_attempts=execution_attempts,
            last_run_log_line=last_run_log_line,
            now=self._clock(),
            app_messages=app_messages,
        )
        self._outcomes.setdefault(job_id, asyncio.get_running_loop().create_future())
        self._inbox.put_nowait(None)

    def unfollow(self, job_id: str) -> None:
        """Forget a job (its waiter left); the job keeps running on the server."""
        self.follower.unfollow(job_id)
        future = self._outcomes.pop(job_id, None)
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # Retrieved: nobody waits for it any more.
        elif future is not None:
            future.cancel()
        self._inbox.put_nowait(None)

    async def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Await the end of ``job_id``; its outcome, or None after the timeout."""
        future = self._outcomes.get(job_id)
        if future is None:
            raise LocalProtocolError(f"compute job {job_id!r} is not followed by this driver")
        try:
            async with asyncio.timeout(timeout_seconds):
                return await asyncio.shield(future)
        except TimeoutError:
            return None

    async def close(self) -> None:
        """Stop the loop and close the socket (the jobs keep running on the server)."""
        tasks = [*self._tasks, *self._calls.values()]
        for task in tasks:
            task.cancel()
        # Also retrieves the result of calls that finished but were not fed to the core.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._calls.clear()
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
            self._log.exception("The Insight progress driver stopped")
            error = LocalProtocolError(f"internal error in the Insight progress driver: {exc!r}")
            for job_id in list(self._outcomes):
                self._settle(job_id, error)
            if self._on_event is not None:
                self._on_event(FollowFailed(None, error))

    async def _step(self) -> None:
        """Send what is queued, wait for one frame or the next deadline, handle the events."""
        await self._send_queued()
        if not self._events:
            deadline = self.follower.next_deadline()
            wait = receive_timeout(self._clock(), deadline)
            item = await self._receive(wait)
            now = self._clock()
            if isinstance(item, _Answer):
                self._events.extend(self._answered(item))
            elif item is not None and item[0] is self._ws:
                _, data, reason = item
                if data is None:
                    await self._lost(reason)
                else:
                    self._events.extend(self.follower.receive_text(data, now))
            self._events.extend(self.follower.tick(now))
        while self._events:
            event = self._events.popleft()
            self._log.log(event.log_level, event.describe())
            if self._on_event is not None:
                self._on_event(event)
            self._events.extend(await self._handle(event))

    async def _send_queued(self) -> None:
        for text in self.follower.data_to_send():
            if self._ws is None:
                return
            try:
                await self._ws.send(text)
            except (ConnectionClosed, OSError) as exc:
                await self._lost(f"sending failed: {type(exc).__name__}")

    async def _receive(self, timeout: float) -> _Item:
        """One inbox item, or None on timeout or a wake-up."""
        try:
            async with asyncio.timeout(timeout):
                return await self._inbox.get()
        except TimeoutError:
            return None

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
        """Answer one event with the core call the follower module prescribes (REST answers
        come back later through the inbox: see :meth:`_start_call`)."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._settle(event.job_id, event.outcome)
            case ev.TokenRefreshDue():
                self._start_call(_TOKEN_CALL, self._refresh_token, self._rest.refresh_token)
            case ev.ReconnectDue():
                await self._connect()
            case ev.ReconcileDue():
                reconcile = functools.partial(self._reconcile, event.job_id)
                key = ("reconcile", event.job_id)
                self._start_call(key, reconcile, self._rest.get_job, event.job_id)
            case ev.RunLogFetchDue():
                fetch = functools.partial(self._fetch_run_log, event)
                url, key = event.run_log_url, ("run log", event.job_id)
                self._start_call(
                    key, fetch, self._rest.get_run_log, url, compute_job_id=event.job_id
                )
        return []

    def _refresh_token(self, call: asyncio.Task[Token]) -> list[ev.Event]:
        try:
            token = call.result()
        except InsightError as exc:
            if exc.permanent:
                self._fail(None, exc)
                return []
            self._log.warning("Refreshing the Insight token failed (%s); retrying soon", exc)
            return []
        self._use_token(token)
        return []

    def _use_token(self, token: Token) -> None:
        self.follower.token_refreshed(
            token.value, token.expires_at, self._clock(), lifetime_seconds=token.lifetime_seconds
        )

    async def _connect(self) -> None:
        """Open a socket; a 401 gets one fresh token (§B9 #4); any failure goes to the core."""
        await self._close_socket()
        try:
            try:
                # current_token() may have minted a new one: the core times whatever is used.
                token = await asyncio.to_thread(self._rest.current_token)
                self._use_token(token)
                self._ws, connection_id = await self._opener(self._settings, token.value)
            except AuthenticationError:
                token = await asyncio.to_thread(self._rest.refresh_token)
                self._use_token(token)
                self._ws, connection_id = await self._opener(self._settings, token.value)
        except InsightError as exc:
            self._log.warning("Insight progress socket unavailable: %s", exc)
            self.follower.connection_failed(self._clock(), str(exc))
            return
        self.follower.connection_opened(connection_id, self._clock())
        self._spawn(self._read(self._ws))

    async def _lost(self, reason: str) -> None:
        self._log.info("Insight progress socket lost (%s); reconnecting", reason)
        await self._close_socket()
        self.follower.connection_lost(self._clock(), reason)

    def _reconcile(self, job_id: str, call: asyncio.Task[dict[str, Any]]) -> list[ev.Event]:
        try:
            document = call.result()
        except JobNotFound:
            return self.follower.job_gone(job_id, self._clock())
        except InsightError as exc:
            if exc.permanent:
                self._fail(job_id, exc)
                return []
            self._log.warning("Checking compute job %s over REST failed: %s", job_id, exc)
            self.follower.reconcile_failed(job_id, self._clock(), str(exc))
            return []
        return self.follower.job_document_received(job_id, document, self._clock())

    def _fetch_run_log(self, event: ev.RunLogFetchDue, call: asyncio.Task[str]) -> list[ev.Event]:
        try:
            text = call.result()
        except InsightError as exc:
            self._log.warning("Fetching the run log of %s failed: %s", event.job_id, exc)
            return self.follower.run_log_unavailable(event.job_id, self._clock(), str(exc))
        return self.follower.run_log_fetched(event.job_id, text, self._clock())

    # ----------------------------------------------------------------------------- REST calls

    def _start_call(
        self,
        key: _CallKey,
        feed: Callable[[asyncio.Task[_T]], list[ev.Event]],
        function: Callable[_P, _T],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> None:
        """Run ``function`` off the loop as a task of its own; its finished task comes back
        through the inbox and :meth:`_answered` hands it to ``feed``. A call already in flight
        for ``key`` stands for this one: the core asks again when an answer is late."""
        if key in self._calls:
            self._log.debug("REST call %s already in flight; not sent twice", key)
            return
        coroutine = self._call_rest(key, function, *args, **kwargs)
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._calls[key] = task
        task.add_done_callback(lambda done: self._inbox.put_nowait(_Answer(key, done, feed)))

    async def _call_rest(
        self, key: _CallKey, function: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        if key == _TOKEN_CALL:
            # Not in the pool: a token refresh must never queue behind slow downloads.
            return await asyncio.to_thread(function, *args, **kwargs)
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._rest_pool, call)

    def _answered(self, answer: _Answer) -> list[ev.Event]:
        """Feed a finished REST call to the core, on the loop task like every core call."""
        if self._calls.get(answer.key) is answer.call:
            del self._calls[answer.key]
        if answer.call.cancelled():
            return []  # Only close() cancels calls.
        return answer.feed(answer.call)

    # ----------------------------------------------------------------------------- helpers

    def _settle(self, job_id: str, result: JobOutcome | InsightError) -> None:
        future = self._outcomes.get(job_id)
        if future is None or future.done():
            return
        if isinstance(result, InsightError):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _fail(self, job_id: str | None, error: InsightError) -> None:
        """Stop following ``job_id`` (None: every job) and make its waiters raise ``error``."""
        following = self.follower.following
        if job_id is not None and job_id not in following:
            # Ended (or unfollowed) while the call was out: its end stands.
            self._log.warning(
                "REST call for compute job %s failed after its end: %s", job_id, error
            )
            return
        failed = [job_id] if job_id is not None else list(following)
        self._log.error("Following Insight compute job(s) %s failed: %s", failed, error)
        for job in failed:
            self.follower.unfollow(job)
            self._settle(job, error)
        if self._on_event is not None:
            self._on_event(FollowFailed(job_id, error))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_socket(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()
