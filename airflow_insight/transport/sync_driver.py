"""The blocking driver: follow compute jobs over the progress WebSocket with ``websocket-client``.

It only moves bytes and time for the sans-I/O :class:`~airflow_insight.protocol.follower.Follower`
(the loop of that module's docstring): wait in ``recv`` until the core's next deadline, feed it
what arrived and the time, send what it queued, answer each event in one line. Ping frames are
answered by ``websocket-client`` inside ``recv``, so the loop goes back to ``recv`` after every
received message and its events; nothing outside ``recv`` blocks for long except the REST calls
the core asks for (each bounded by the connection's timeouts).

Errors: a REST error a retry cannot fix (``InsightError.permanent``, e.g. refused credentials)
ends :meth:`SyncJobFollower.wait` by raising it; every other failure is reported to the core,
which reconnects with backoff and reconciles over REST, so a job is never lost nor waited for
forever. Socket failures are never fatal: REST keeps every job moving.

The async twin is :mod:`airflow_insight.transport.async_driver`; both expose the same methods.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import websocket

from airflow_insight.exceptions import (
    AuthenticationError,
    InsightError,
    JobNotFound,
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
SocketOpener = Callable[[ConnectionSettings, str], "tuple[websocket.WebSocket, str | None]"]

#: Shortest wait handed to ``recv``: a zero timeout would make the socket non-blocking.
MIN_WAIT_SECONDS = 0.001


def open_socket(settings: ConnectionSettings, token: str) -> tuple[websocket.WebSocket, str | None]:
    """Open the progress WebSocket with the bearer token; return it and its ``connection-id``.

    Handshake failures become :mod:`airflow_insight.exceptions` types whose messages carry the
    HTTP status only (never a header, so never the token).
    """
    url = settings.websocket_url
    # Building a TLS context reads the CA store from disk (tens of ms): only for wss, as the
    # async twin does.
    sslopt = {"context": tls_context(settings)} if url.startswith("wss:") else None
    try:
        ws = websocket.create_connection(
            url,
            timeout=settings.connect_timeout_seconds,
            header=[f"Authorization: Bearer {token}"],
            sslopt=sslopt,
            suppress_origin=True,
            # websocket-client's UTF-8 check is pure Python (a large share of forwarding time);
            # the core decodes the frame's bytes strictly as UTF-8 and rejects what is not.
            skip_utf8_validation=True,
        )
    except websocket.WebSocketBadStatusException as exc:
        raise handshake_error(exc.status_code, url) from None
    except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
        raise socket_open_timed_out(url) from exc
    except (websocket.WebSocketException, OSError) as exc:
        raise socket_open_failed(url, exc) from exc
    headers = ws.getheaders() or {}
    connection_id = headers.get(CONNECTION_ID_HEADER)
    return ws, connection_id if isinstance(connection_id, str) and connection_id else None


class SyncJobFollower:
    """Follow compute jobs over one WebSocket session, blocking; see the module docstring.

    Use as a context manager (or call :meth:`close`)::

        with SyncJobFollower(settings, rest, on_lines=sink) as driver:
            driver.open()
            document = driver.submit(request, payload)
            outcome = driver.wait(request["id"])
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
        sleep: Callable[[float], None] = time.sleep,
        opener: SocketOpener = open_socket,
    ) -> None:
        self._settings = settings
        self._rest = rest
        self._on_lines = on_lines
        self._log = logger or log
        self._clock = clock
        self._sleep = sleep
        self._opener = opener
        self.follower = Follower(config, jitter_source=random.Random().random)
        self._ws: websocket.WebSocket | None = None
        self._events: collections.deque[ev.Event] = collections.deque()
        self._outcomes: dict[str, JobOutcome] = {}

    # ----------------------------------------------------------------------------- public

    def open(self) -> None:
        """Get a token and open the socket; a failed connect is retried by the core later."""
        self._connect()

    def submit(
        self,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        *,
        app_messages: AppMessageHandler | None = None,
    ) -> dict[str, Any]:
        """Submit a job with this socket's ``connection-id`` and follow it; its job document."""
        document = self._rest.submit_job(request, payload, self.follower.connection_id)
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

    def unfollow(self, job_id: str) -> None:
        """Stop following a job (it keeps running on the server)."""
        self.follower.unfollow(job_id)
        self._outcomes.pop(job_id, None)

    def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Drive the session until ``job_id`` ends; its outcome, or None after the timeout."""
        end = None if timeout_seconds is None else self._clock() + timeout_seconds
        while job_id not in self._outcomes:
            if end is not None and self._clock() >= end:
                return None
            self._step(end)
        return self._outcomes[job_id]

    def close(self) -> None:
        """Close the socket (the jobs keep running on the server)."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close(timeout=1.0)

    def __enter__(self) -> SyncJobFollower:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------- the loop

    def _step(self, end: float | None) -> None:
        """Send what is queued, wait for one message or the next deadline, handle the events."""
        self._send_queued()
        if not self._events:
            deadline = self.follower.next_deadline()
            wait = receive_timeout(self._clock(), deadline, end, floor_seconds=MIN_WAIT_SECONDS)
            data = self._receive(wait)
            now = self._clock()
            if data is not None:
                self._events.extend(self.follower.receive_text(data, now))
            self._events.extend(self.follower.tick(now))
        while self._events:
            event = self._events.popleft()
            self._log.log(event.log_level, event.describe())
            self._events.extend(self._handle(event))

    def _send_queued(self) -> None:
        for text in self.follower.data_to_send():
            if self._ws is None:
                return
            try:
                self._ws.send(text)
            except (websocket.WebSocketException, OSError) as exc:
                self._lost(f"sending failed: {type(exc).__name__}")

    def _receive(self, timeout: float) -> str | bytes | None:
        """One text message, or None on timeout / socket loss (no socket: just sleep)."""
        if self._ws is None:
            self._sleep(timeout)
            return None
        try:
            self._ws.settimeout(timeout)
            # control_frame=True: return after each ping (already answered inside recv_data),
            # else a server pinging more often than ``timeout`` would keep us in recv forever.
            opcode, data = self._ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self._lost("closed by the server")
            return None
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return None
        result: str | bytes = data
        return result

    # ----------------------------------------------------------------------------- events

    def _handle(self, event: ev.Event) -> list[ev.Event]:
        """Answer one event with the core call the follower module prescribes."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._outcomes[event.job_id] = event.outcome
            case ev.TokenRefreshDue():
                self._refresh_token()
            case ev.ReconnectDue():
                self._connect()
            case ev.ReconcileDue():
                return self._reconcile(event.job_id)
            case ev.RunLogFetchDue():
                return self._fetch_run_log(event)
        return []

    def _refresh_token(self) -> None:
        try:
            token = self._rest.refresh_token()
        except InsightError as exc:
            if exc.permanent:
                raise
            self._log.warning("Refreshing the Insight token failed (%s); retrying soon", exc)
            return
        self._use_token(token)

    def _use_token(self, token: Token) -> None:
        self.follower.token_refreshed(
            token.value, token.expires_at, self._clock(), lifetime_seconds=token.lifetime_seconds
        )

    def _connect(self) -> None:
        """Open a socket; a 401 gets one fresh token (§B9 #4); any failure goes to the core."""
        self.close()
        try:
            try:
                # current_token() may have minted a new one: the core times whatever is used.
                token = self._rest.current_token()
                self._use_token(token)
                self._ws, connection_id = self._opener(self._settings, token.value)
            except AuthenticationError:
                token = self._rest.refresh_token()
                self._use_token(token)
                self._ws, connection_id = self._opener(self._settings, token.value)
        except InsightError as exc:
            self._log.warning("Insight progress socket unavailable: %s", exc)
            self.follower.connection_failed(self._clock(), str(exc))
            return
        self.follower.connection_opened(connection_id, self._clock())

    def _lost(self, reason: str) -> None:
        self._log.info("Insight progress socket lost (%s); reconnecting", reason)
        self.close()
        self.follower.connection_lost(self._clock(), reason)

    def _reconcile(self, job_id: str) -> list[ev.Event]:
        try:
            document = self._rest.get_job(job_id)
        except JobNotFound:
            return self.follower.job_gone(job_id, self._clock())
        except InsightError as exc:
            if exc.permanent:
                raise
            self._log.warning("Checking compute job %s over REST failed: %s", job_id, exc)
            self.follower.reconcile_failed(job_id, self._clock(), str(exc))
            return []
        return self.follower.job_document_received(job_id, document, self._clock())

    def _fetch_run_log(self, event: ev.RunLogFetchDue) -> list[ev.Event]:
        try:
            text = self._rest.get_run_log(event.run_log_url, compute_job_id=event.job_id)
        except InsightError as exc:
            self._log.warning("Fetching the run log of %s failed: %s", event.job_id, exc)
            return self.follower.run_log_unavailable(event.job_id, self._clock(), str(exc))
        return self.follower.run_log_fetched(event.job_id, text, self._clock())
