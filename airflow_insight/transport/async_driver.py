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
* REST calls run through ``asyncio.to_thread`` on the one REST client: the loop is never blocked.
  They are awaited one at a time, like the blocking twin's; frames queue up meanwhile.
* A REST error a retry cannot fix fails the job(s) it concerns (their futures raise it, and
  ``on_event`` gets a :class:`FollowFailed`) instead of ending the loop: other jobs on the same
  socket keep going.
* A transient failure to get the first token does not fail :meth:`open`: the core's reconnect
  backoff keeps trying, as after any later failure.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from airflow_insight.exceptions import (
    AuthenticationError,
    InsightError,
    JobNotFound,
    LocalProtocolError,
)
from airflow_insight.protocol import events as ev
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


#: What the reader task puts into the inbox: the socket and a frame, or None once it closed.
#: A bare None wakes the loop (a job was followed or unfollowed).
_Item = tuple[ClientConnection, str | bytes | None, str] | None


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
        self, request: Mapping[str, Any], payload: bytes | None = None
    ) -> dict[str, Any]:
        """Submit a job with this socket's ``connection-id`` and follow it; its job document."""
        cid = self.follower.connection_id
        document = await asyncio.to_thread(self._rest.submit_job, request, payload, cid)
        self.follow(str(request["id"]))
        return document

    def follow(
        self, job_id: str, *, execution_attempts: int = 0, last_run_log_line: int = -1
    ) -> None:
        """Follow an existing job (re-attach), resuming after ``last_run_log_line``."""
        self.follower.follow(
            job_id,
            execution_attempts=execution_attempts,
            last_run_log_line=last_run_log_line,
            now=self._clock(),
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
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
            if item is not None and item[0] is self._ws:
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
        """Answer one event with the core call the follower module prescribes."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._settle(event.job_id, event.outcome)
            case ev.TokenRefreshDue():
                await self._refresh_token()
            case ev.ReconnectDue():
                await self._connect()
            case ev.ReconcileDue():
                return await self._reconcile(event.job_id)
            case ev.RunLogFetchDue():
                return await self._fetch_run_log(event)
        return []

    async def _refresh_token(self) -> None:
        try:
            token = await asyncio.to_thread(self._rest.refresh_token)
        except InsightError as exc:
            if exc.permanent:
                self._fail(None, exc)
                return
            self._log.warning("Refreshing the Insight token failed (%s); retrying soon", exc)
            return
        self._use_token(token)

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

    async def _reconcile(self, job_id: str) -> list[ev.Event]:
        try:
            document = await asyncio.to_thread(self._rest.get_job, job_id)
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

    async def _fetch_run_log(self, event: ev.RunLogFetchDue) -> list[ev.Event]:
        try:
            text = await asyncio.to_thread(
                self._rest.get_run_log, event.run_log_url, compute_job_id=event.job_id
            )
        except InsightError as exc:
            self._log.warning("Fetching the run log of %s failed: %s", event.job_id, exc)
            return self.follower.run_log_unavailable(event.job_id, self._clock(), str(exc))
        return self.follower.run_log_fetched(event.job_id, text, self._clock())

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
        failed = [job_id] if job_id is not None else list(self.follower.following)
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
