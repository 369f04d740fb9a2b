"""The blocking driver: follow compute jobs over the progress WebSocket with ``websocket-client``.

A pump for the sans-I/O :class:`~airflow_insight.protocol.follower.Follower` (the loop of that
module's docstring): wait for a frame until the core's next deadline, feed it what arrived and the
time, send what it queued, perform each call it asks for and hand back the answer. It decides
nothing: errors, retries and what to do next are the core's. Every event goes to ``on_event``
(the adapter logs it; the driver logs none) and run-log batches to ``on_lines``.

A reader thread per socket reads every frame into an inbox; ``websocket-client`` answers ping
frames inside that thread's ``recv``, so pongs go out on time while the loop forwards a flood of
lines or waits on a REST call (each bounded by the connection's timeouts). The inbox is unbounded,
like the async twin's: a sink slower than the server only delays lines, never the pongs.

The async twin is :mod:`airflow_insight.transport.async_driver`; both have the same methods and
the same behaviour for the same inputs: :meth:`~SyncJobFollower.open` raises when the first token
cannot be had, :meth:`~SyncJobFollower.wait` raises the job's error (a permanent REST error, an
unreachable server) and raises :class:`~airflow_insight.exceptions.LocalProtocolError` for a job
that is not followed.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import websocket

from airflow_insight.exceptions import InsightError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.wire import CONNECTION_ID_HEADER
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.driving import (
    EventSink,
    LineSink,
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

#: Opens the progress socket with a bearer token: ``(socket, connection-id)``.
SocketOpener = Callable[[ConnectionSettings, str], "tuple[websocket.WebSocket, str | None]"]
#: A frame from the reader thread: (socket, text, "") or (socket, None, why it ended).
_Frame = tuple[websocket.WebSocket, str | bytes | None, str]

#: Shortest wait for the inbox (a zero timeout would spin).
MIN_WAIT_SECONDS = 0.001
#: The socket's timeout once open: bounds a send to a server that stopped reading.
SEND_TIMEOUT_SECONDS = 10.0
#: How long close() waits for the reader thread (it ends as soon as the socket is shut).
READER_JOIN_SECONDS = 2.0


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

        with SyncJobFollower(settings, rest, on_lines=sink, on_event=log_it) as driver:
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
        self._ws: websocket.WebSocket | None = None
        self._reader: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[_Frame] = queue.SimpleQueue()
        self._events: collections.deque[ev.Event] = collections.deque()
        self._ends: dict[str, JobOutcome | InsightError] = {}

    # ----------------------------------------------------------------------------- public

    def open(self) -> None:
        """Get the first token (raises if it cannot be had) and open the socket."""
        self._events.extend(self.follower.start(self._clock()))
        self._drain()
        failed = self._ends.pop("", None)
        if isinstance(failed, InsightError):
            raise failed

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
        self._ends.pop(job_id, None)
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
        self._ends.pop(job_id, None)

    def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Drive the session until ``job_id`` ends; its outcome, or None after the timeout."""
        end = None if timeout_seconds is None else self._clock() + timeout_seconds
        while job_id not in self._ends:
            if job_id not in self.follower.following:
                raise not_followed(job_id)
            if end is not None and self._clock() >= end:
                return None
            self._step(end)
        result = self._ends[job_id]
        if isinstance(result, InsightError):
            raise result
        return result

    def close(self) -> None:
        """Close the socket and end its reader thread (the jobs keep running on the server)."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.send_close()
            # shutdown(2) wakes the reader thread out of recv (a bare close would not, on
            # Linux): it reports the end and exits. Both calls are untyped in the library.
            abort: Callable[[], None] = ws.abort
            release: Callable[[], None] = ws.shutdown
            with contextlib.suppress(websocket.WebSocketException, OSError):
                abort()
            release()
        if self._reader is not None:
            self._reader.join(timeout=READER_JOIN_SECONDS)
            self._reader = None

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
        """Send what is queued, wait for one frame or the next deadline, handle the events."""
        self._send_queued()
        deadline = self.follower.next_deadline()
        wait = receive_timeout(self._clock(), deadline, end, floor_seconds=MIN_WAIT_SECONDS)
        try:
            ws, data, reason = self._inbox.get(timeout=wait)
        except queue.Empty:
            ws = None
        if ws is not None and ws is self._ws:
            if data is None:
                self._lost(reason)
            else:
                self._events.extend(self.follower.receive_text(data, self._clock()))
        self._events.extend(self.follower.tick(self._clock()))
        self._drain()

    def _drain(self) -> None:
        while self._events:
            event = self._events.popleft()
            if self._on_event is not None:
                self._on_event(event)
            self._events.extend(self._handle(event))
            self._send_queued()  # Pongs and answers go out before the next event's work.

    def _send_queued(self) -> None:
        for text in self.follower.data_to_send():
            if self._ws is None:
                return
            try:
                self._ws.send(text)
            except (websocket.WebSocketException, OSError) as exc:
                self._lost(f"sending failed: {type(exc).__name__}")

    def _read(self, ws: websocket.WebSocket) -> None:
        """The reader thread: move every text frame of ``ws`` into the inbox, then say why it
        ended (``websocket-client`` answers ping frames inside ``recv_data``)."""
        reason = "closed by the server"
        while True:
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue  # The socket timeout only bounds sends; reading waits for ever.
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                self._inbox.put((ws, data, ""))
        self._inbox.put((ws, None, reason))

    # ----------------------------------------------------------------------------- events

    def _handle(self, event: ev.Event) -> list[ev.Event]:
        """Hand a batch to the sink, record an end, or perform a call and feed its answer."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._ends[event.job_id] = event.outcome
            case ev.FollowFailed():
                self._ends[event.job_id or ""] = event.error
            case ev.ReconnectDue():
                return self._connect(event)
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue():
                return self._answer(event.call_id, rest_call(self._rest, event))
        return []

    def _answer(self, call_id: int, perform: Callable[[], Any]) -> list[ev.Event]:
        try:
            result = perform()
        except InsightError as exc:
            return self.follower.call_failed(call_id, exc, self._clock())
        return self.follower.call_succeeded(call_id, result, self._clock())

    def _connect(self, call: ev.ReconnectDue) -> list[ev.Event]:
        self.close()
        assert call.token is not None  # The core always hands the token with the call.
        try:
            ws, connection_id = self._opener(self._settings, call.token.value)
        except InsightError as exc:
            return self.follower.call_failed(call.call_id, exc, self._clock())
        self._ws = ws
        ws.settimeout(SEND_TIMEOUT_SECONDS)
        self._reader = threading.Thread(
            target=self._read, args=(ws,), name="insight-socket-reader", daemon=True
        )
        self._reader.start()
        return self.follower.call_succeeded(call.call_id, connection_id, self._clock())

    def _lost(self, reason: str) -> None:
        self.close()
        self._events.extend(self.follower.connection_lost(self._clock(), reason))
