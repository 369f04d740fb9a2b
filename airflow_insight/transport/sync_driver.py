"""The blocking driver: follow compute jobs over the progress WebSocket with ``websocket-client``.

A pump for the sans-I/O :class:`~airflow_insight.protocol.follower.Follower`: take one item from
the inbox (or wait until the core's next deadline), feed it and the time to the core, send the
frames it returns, hand every event to the one sink, and perform each call it asks for. It
decides nothing. Its twin, method for method, is :mod:`.async_driver`; what they share is in
:mod:`.driving`. Where this one differs, and why:

* A reader thread per socket reads every frame into the inbox (bounded as
  :mod:`airflow_insight.protocol.inbox` decides); ``websocket-client`` answers ping frames in that
  thread, and a frame that needs an immediate reply is handed to the core there. A lock keeps the
  core to one thread at a time (held only inside core calls and their sends).
* REST calls are performed in line, on the thread that waits (each bounded by its timeouts).
"""

from __future__ import annotations

import collections
import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import websocket

from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.inbox import INBOX_LIMIT_CHARS
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.replies import needs_immediate_reply
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import driving as d
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.sync_handshake import (
    SocketOpener,
    close_socket,
    open_socket,
    start_reader,
)
from airflow_insight.transport.sync_inbox import SyncInbox

__all__ = ["SyncJobFollower", "open_socket"]

#: Shortest wait for the inbox (a zero timeout would spin).
MIN_WAIT_SECONDS = 0.001
#: The socket's timeout once open: bounds a send to a server that stopped reading.
SEND_TIMEOUT_SECONDS = 10.0


class SyncJobFollower(d.Following):
    """Follow compute jobs over one WebSocket session, blocking; see the module docstring.

    Use as a context manager (or call :meth:`close`)::

        with SyncJobFollower(settings, rest, on_event=sink) as driver:
            driver.open()
            document = driver.submit(request, payload)
            outcome = driver.wait(request["id"])
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
        self._ws: websocket.WebSocket | None = None
        self._reader: threading.Thread | None = None
        self._inbox: SyncInbox = SyncInbox(INBOX_LIMIT_CHARS)
        self._events: collections.deque[ev.Event] = collections.deque()
        self._ends = d.Ends()
        # The core is fed by this thread and, for urgent frames, by the reader thread.
        self._core = threading.RLock()

    # ----------------------------------------------------------------------------- public

    def open(self) -> None:
        """Get the first token (raises if it cannot be had) and open the socket."""
        self._feed(self.follower.start)
        self._drain()
        if self._ends.session_error is not None:
            raise self._ends.session_error

    def submit(
        self,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        *,
        app_messages: AppMessageHandler | None = None,
    ) -> dict[str, Any]:
        """Submit a job with this socket's ``connection-id`` and follow it; its job document."""
        with self._core:
            connection_id = self.follower.connection_id
        document = self._rest.submit_job(request, payload, connection_id)
        self.follow(str(request["id"]), app_messages=app_messages)
        return document

    def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Drive the session until ``job_id`` ends; its outcome, or None after the timeout."""
        end = None if timeout_seconds is None else self._clock() + timeout_seconds
        while not self._ends.ended(job_id):
            if end is not None and self._clock() >= end:
                return None
            self._step(end)
        return self._ends.outcome(job_id)

    def close(self) -> None:
        """Close the socket and end its reader thread (the jobs keep running on the server)."""
        self._close_socket()

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
        """Take one item or wait for the next deadline, feed it and the time, drain the events."""
        with self._core:
            deadline = self.follower.next_deadline()
        wait = d.receive_timeout(self._clock(), deadline, end, floor_seconds=MIN_WAIT_SECONDS)
        item = self._inbox.get(wait)
        if item is not None:
            self._take(item)
        self._feed(self.follower.tick)
        self._drain()

    def _take(self, item: d.InboxItem) -> None:
        """Feed one inbox item to the core (items of a socket no longer in use mean nothing)."""
        match item:
            case d.CallAnswer():
                self._feed(item.core_input(self.follower))
            case d.Fed():
                self._feed(lambda now: item.outputs)
            case d.Frame() if item.socket is self._ws:
                self._feed(functools.partial(self.follower.receive_text, item.text))
            case d.Answered() if item.socket is self._ws:
                self._events.extend(item.events)
            case d.Closed() if item.socket is self._ws:
                self._lost()

    def _feed(self, core_input: d.CoreInput) -> None:
        """Feed the core one input: its frames go out at once, its events queue."""
        events, sent = self._core_call(core_input, self._ws)
        self._events.extend(events)
        if not sent:
            self._lost()  # Not under the lock: closing joins the reader thread.

    def _core_call(
        self, core_input: d.CoreInput, ws: websocket.WebSocket | None
    ) -> tuple[list[ev.Event], bool]:
        """Run a core input under the lock and send its frames on ``ws`` while it is the socket
        in use; the events, and False when a send failed."""
        with self._core:
            texts, events = d.split_outputs(core_input(self._clock()))
            for text in texts:
                if ws is None or ws is not self._ws:
                    break
                try:
                    ws.send(text)
                except (websocket.WebSocketException, OSError):
                    return events, False
        return events, True

    def _drain(self) -> None:
        """Hand every queued event to the sink, then do what it asks."""
        while self._events:
            event = self._events.popleft()
            self._on_event(event)
            self._handle(event)

    def _handle(self, event: ev.Event) -> None:
        """Record an end, or perform a call and feed its answer."""
        match event:
            case ev.ReconnectDue():
                self._connect(event)
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue():
                self._take(d.perform(event.call_id, d.rest_call(self._rest, event)))
            case _:
                self._ends.record(event)

    def _connect(self, call: ev.ReconnectDue) -> None:
        """Open a new socket and start its reader; the core gets its ``connection-id``."""
        self._close_socket()
        assert call.token is not None  # The core always hands the token with the call.
        answer = d.perform(
            call.call_id, functools.partial(self._opener, self._settings, call.token.value)
        )
        if answer.error is None:
            ws, connection_id = answer.result
            ws.settimeout(SEND_TIMEOUT_SECONDS)
            self._ws = ws  # No reader runs yet: the lock is not needed.
            self._reader = start_reader(
                ws, functools.partial(self._read, ws), lambda: self._inbox.put_frame(d.Closed(ws))
            )
            answer = d.CallAnswer(call.call_id, connection_id)
        self._take(answer)

    def _read(self, ws: websocket.WebSocket, data: str | bytes) -> bool:
        """From the reader thread: queue a frame, or hand one that cannot wait (the core says
        which) to the core at once; False to stop reading."""
        if not needs_immediate_reply(data):
            self._inbox.put_frame(d.Frame(ws, data), len(data), lambda: ws is self._ws)
            return True
        with self._core:  # Reentrant: held across the check and the core call.
            if ws is not self._ws:
                return False  # Closed meanwhile: its frames mean nothing to the core.
            events, sent = self._core_call(functools.partial(self.follower.receive_text, data), ws)
        self._inbox.put_frame(d.Answered(ws, events))
        return sent

    def _lost(self) -> None:
        """The socket in use closed or broke: close it and tell the core."""
        self._close_socket()
        self._feed(self.follower.connection_lost)

    def _close_socket(self) -> None:
        with self._core:  # The reader thread answers only while its socket is the one.
            ws, self._ws = self._ws, None
        if ws is not None:
            close_socket(ws, self._reader)
        self._reader = None
