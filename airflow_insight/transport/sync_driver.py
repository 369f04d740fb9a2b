"""The blocking driver: follow compute jobs over the progress WebSocket with ``websocket-client``.

A pump for the sans-I/O :class:`~airflow_insight.protocol.follower.Follower` (the loop of that
module's docstring): wait for a frame until the core's next deadline, feed it what arrived and the
time, send the frames it returns, perform each call it asks for and hand back the answer. It decides
nothing: errors, retries and what to do next are the core's. Every event goes to ``on_event``
(the adapter logs it; the driver logs none) and run-log batches to ``on_lines``.

A reader thread per socket reads every frame into an inbox; ``websocket-client`` answers ping
frames inside that thread's ``recv``, so pongs go out on time while the loop forwards a flood of
lines or waits on a REST call (each bounded by the connection's timeouts). The inbox is bounded as
:mod:`airflow_insight.protocol.inbox` decides: a server that writes faster than the task log takes
lines makes the reader thread wait for room (TCP then slows the server), so memory stays bounded;
the wait ends as soon as the loop takes one frame, so a ping waits at most one frame's forwarding.
A frame the core says needs an immediate reply (:func:`~airflow_insight.protocol.replies.
needs_immediate_reply`: a JSON ``PING``, an ``APP_MESSAGE``) is handed to the core by the reader
thread itself, which sends the reply at once; its events take the frame's place in the inbox. A
lock keeps the core to one thread at a time (the loop holds it only inside core calls and sends,
never while the sink or a REST call runs).

The async twin is :mod:`airflow_insight.transport.async_driver`; both have the same methods and
the same behaviour for the same inputs: :meth:`~SyncJobFollower.open` raises when the first token
cannot be had, :meth:`~SyncJobFollower.wait` raises the job's error (a permanent REST error, an
unreachable server) and raises :class:`~airflow_insight.exceptions.LocalProtocolError` for a job
that is not followed.
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

from airflow_insight.exceptions import InsightError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.follower import Follower, FollowerConfig
from airflow_insight.protocol.inbox import INBOX_LIMIT_CHARS, InboxRoom
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.replies import needs_immediate_reply
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.driving import (
    EventSink,
    LineSink,
    not_followed,
    receive_timeout,
    rest_call,
    split_outputs,
)
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.sync_handshake import (
    SocketOpener,
    close_socket,
    open_socket,
    start_reader,
)

__all__ = ["SyncJobFollower", "open_socket"]

#: From the reader thread: (socket, text, ""), (socket, the events of a frame it answered, ""),
#: or (socket, None, why it ended).
_Frame = tuple[websocket.WebSocket, str | bytes | list[ev.Event] | None, str]
#: A core input, given the time.
_Input = Callable[[float], list[ev.Output]]

#: How often a reader waiting for room checks that its socket is still the one in use.
INBOX_RECHECK_SECONDS = 0.1
#: Shortest wait for the inbox (a zero timeout would spin).
MIN_WAIT_SECONDS = 0.001
#: The socket's timeout once open: bounds a send to a server that stopped reading.
SEND_TIMEOUT_SECONDS = 10.0


class _Inbox:
    """Frames from the reader thread to the loop, bounded in characters of text (see the module
    docstring); the reader waits for room, the loop never waits for the reader."""

    def __init__(self, limit_chars: int) -> None:
        self.room = InboxRoom(limit_chars)
        self._frames: collections.deque[tuple[_Frame, int]] = collections.deque()
        self._changed = threading.Condition()

    def put(self, frame: _Frame, chars: int = 0, wanted: Callable[[], bool] = bool) -> None:
        """Queue ``frame`` (``chars`` long), first waiting for room while ``wanted()``."""
        with self._changed:
            while not self.room.fits(chars) and wanted():
                self._changed.wait(INBOX_RECHECK_SECONDS)
            self._frames.append((frame, chars))
            self.room.take(chars)
            self._changed.notify_all()

    def get(self, timeout: float) -> _Frame | None:
        """The oldest frame, waiting up to ``timeout`` seconds for one; None if none came."""
        with self._changed:
            if not self._frames:
                self._changed.wait(timeout)
            if not self._frames:
                return None
            frame, chars = self._frames.popleft()
            self.room.release(chars)
            self._changed.notify_all()
            return frame


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
        self.follower = Follower(
            config, jitter_source=random.Random().random, server=settings.server_name
        )
        self._ws: websocket.WebSocket | None = None
        self._reader: threading.Thread | None = None
        self._inbox = _Inbox(INBOX_LIMIT_CHARS)
        self._events: collections.deque[ev.Event] = collections.deque()
        self._ends: dict[str, JobOutcome | InsightError] = {}
        # The core is fed by this thread and, for urgent frames, by the reader thread.
        self._core = threading.RLock()

    # ----------------------------------------------------------------------------- public

    def open(self) -> None:
        """Get the first token (raises if it cannot be had) and open the socket."""
        self._feed(self.follower.start)
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
        with self._core:
            connection_id = self.follower.connection_id
        document = self._rest.submit_job(request, payload, connection_id)
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
        self._feed(
            lambda now: self.follower.follow(
                job_id,
                execution_attempts=execution_attempts,
                last_run_log_line=last_run_log_line,
                now=now,
                app_messages=app_messages,
            )
        )

    def unfollow(self, job_id: str) -> None:
        """Stop following a job (it keeps running on the server)."""
        self._feed(lambda now: self.follower.unfollow(job_id))
        self._ends.pop(job_id, None)

    def wait(self, job_id: str, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """Drive the session until ``job_id`` ends; its outcome, or None after the timeout."""
        end = None if timeout_seconds is None else self._clock() + timeout_seconds
        while job_id not in self._ends:
            with self._core:
                following = job_id in self.follower.following
            if not following:
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
        with self._core:  # The reader thread answers only while its socket is the one.
            ws, self._ws = self._ws, None
        if ws is not None:
            close_socket(ws, self._reader)
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
        """Wait for one frame or the next deadline, feed it and the time, handle the events."""
        with self._core:
            deadline = self.follower.next_deadline()
        wait = receive_timeout(self._clock(), deadline, end, floor_seconds=MIN_WAIT_SECONDS)
        frame = self._inbox.get(timeout=wait)
        ws, data, reason = frame if frame is not None else (None, None, "")
        if ws is not None and ws is self._ws:
            if data is None:
                self._lost(reason)
            elif isinstance(data, list):
                self._events.extend(data)  # Answered by the reader thread already.
            else:
                self._feed(functools.partial(self.follower.receive_text, data))
        self._feed(self.follower.tick)
        self._drain()

    def _drain(self) -> None:
        while self._events:
            event = self._events.popleft()
            if self._on_event is not None:
                self._on_event(event)
            self._handle(event)

    def _feed(self, core_input: _Input) -> None:
        """Feed the core one input: its frames go out at once, its events to the queue."""
        events, failure = self._core_call(core_input, self._ws)
        self._events.extend(events)
        if failure is not None:
            self._lost(failure)  # Not under the lock: closing joins the reader thread.

    def _core_call(
        self, core_input: _Input, ws: websocket.WebSocket | None
    ) -> tuple[list[ev.Event], str | None]:
        """Run a core input under the lock and send its frames on ``ws`` (while it is the
        socket in use); the events and why sending failed (None: it did not)."""
        with self._core:
            texts, events = split_outputs(core_input(self._clock()))
            for text in texts:
                if ws is None or ws is not self._ws:
                    break
                try:
                    ws.send(text)
                except (websocket.WebSocketException, OSError) as exc:
                    return events, f"sending failed: {type(exc).__name__}"
        return events, None

    def _frame(self, ws: websocket.WebSocket, data: str | bytes) -> str | None:
        """From the reader thread: queue a frame, or answer one that cannot wait (the core
        says which) ahead of the lines in the inbox; why to stop reading, or None."""
        if not needs_immediate_reply(data):
            self._inbox.put((ws, data, ""), len(data), lambda: ws is self._ws)
            return None
        with self._core:  # Reentrant: held across the check and the core call.
            if ws is not self._ws:
                return "replaced"  # Closed meanwhile: its frames mean nothing to the core.
            events, failure = self._core_call(
                functools.partial(self.follower.receive_text, data), ws
            )
        self._inbox.put((ws, events, ""))
        return failure

    # ----------------------------------------------------------------------------- events

    def _handle(self, event: ev.Event) -> None:
        """Hand a batch to the sink, record an end, or perform a call and feed its answer."""
        match event:
            case ev.RunLogLines():
                self._on_lines(event)
            case ev.JobFinished():
                self._ends[event.job_id] = event.outcome
            case ev.FollowFailed():
                self._ends[event.job_id or ""] = event.error
            case ev.ReconnectDue():
                self._connect(event)
            case ev.TokenRefreshDue() | ev.ReconcileDue() | ev.RunLogFetchDue():
                self._answer(event.call_id, rest_call(self._rest, event))

    def _answer(self, call_id: int, perform: Callable[[], Any]) -> None:
        try:
            result = perform()
        except InsightError as exc:
            self._feed(functools.partial(self.follower.call_failed, call_id, exc))
        else:
            self._feed(functools.partial(self.follower.call_succeeded, call_id, result))

    def _connect(self, call: ev.ReconnectDue) -> None:
        self.close()
        assert call.token is not None  # The core always hands the token with the call.
        token = call.token.value
        self._answer(call.call_id, lambda: self._start_socket(*self._opener(self._settings, token)))

    def _start_socket(self, ws: websocket.WebSocket, connection_id: str | None) -> str | None:
        """Use a freshly opened socket: its send timeout and reader thread; its id."""
        ws.settimeout(SEND_TIMEOUT_SECONDS)
        self._ws = ws  # No reader runs yet: the lock is not needed.
        self._reader = start_reader(
            ws, functools.partial(self._frame, ws), lambda why: self._inbox.put((ws, None, why))
        )
        return connection_id

    def _lost(self, reason: str) -> None:
        self.close()
        self._feed(self.follower.connection_lost)
