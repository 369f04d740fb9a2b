"""The progress WebSocket (§B4): handshake, keep-alive, token expiry and client messages.

Each socket runs three parts: the handler reads frames, a writer drains the socket's send queue
(so a job's timeline never waits for a slow client), and a watchdog pings, checks for missed
pongs and closes the socket when its token expires. Pings are sent by the watchdog with
``autoping=False`` so every pong can be recorded.

Close codes (the documentation names none, §B9 #4): 1001 for a missed pong and for emulator
shutdown, 1008 for an expired token and for a client too slow to keep up.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import Callable

from aiohttp import WSMessage, WSMsgType, hdrs, web

from airflow_insight.emulator import faults as f
from airflow_insight.emulator.error_bodies import error_response
from airflow_insight.emulator.hub import HUB_KEY, Hub
from airflow_insight.emulator.record import token_fingerprint
from airflow_insight.emulator.tokens import bearer_from_header
from airflow_insight.exceptions import RemoteProtocolError
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.wire import CONNECTION_ID_HEADER

CLOSE_IDLE = 1001
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


class Connection:
    """One open progress socket."""

    def __init__(
        self,
        hub: Hub,
        request: web.Request,
        ws: web.WebSocketResponse,
        connection_id: str,
        token_expires_at: float,
        ignore_pongs: bool,
    ) -> None:
        self.hub = hub
        self.request = request
        self.ws = ws
        self.id = connection_id
        self.token_expires_at = token_expires_at
        self.ignore_pongs = ignore_pongs
        self.closed = False
        #: The close code the emulator chose, when it closed the socket itself.
        self.close_code: int | None = None
        self.sent = 0
        self.last_pong_at = time.monotonic()
        self._queue: collections.deque[tuple[str, str | None, Callable[[], None] | None]] = (
            collections.deque()
        )
        self._wakeup = asyncio.Event()
        #: Set to make the watchdog look again before its deadline.
        self._watch = asyncio.Event()
        self._ping_counter = 0

    # ------------------------------------------------------------------ sending

    def enqueue(
        self,
        texts: list[str],
        job_id: str | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """Queue texts for the writer; a socket that falls too far behind is closed.

        ``on_sent`` (optional) runs after each of these texts has been written.
        """
        if self.closed:
            return
        self._queue.extend((text, job_id, on_sent) for text in texts)
        if len(self._queue) > self.hub.config.send_queue_limit:
            self._queue.clear()
            self.close_soon(CLOSE_POLICY, "client too slow")
            return
        self._wakeup.set()

    def send_error(self, error_type: str, message: str, job_id: str | None = None) -> None:
        """Queue an ERROR message."""
        text = m.encode_server_message(m.ErrorReported(job_id, error_type, message))
        self.enqueue([text], job_id)

    async def run_writer(self) -> None:
        """Drain the send queue until the socket closes."""
        record = self.hub.record
        record_messages = self.hub.config.record_messages
        while not self.closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue and not self.closed:
                text, job_id, on_sent = self._queue.popleft()
                try:
                    await self.ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    self.closed = True
                    return
                self.sent += 1
                if record_messages:
                    record.add(
                        "ws_sent", {"text": text}, connection_id=self.id, compute_job_id=job_id
                    )
                if on_sent is not None:
                    on_sent()
                self._drop_after_messages(job_id)

    def _drop_after_messages(self, job_id: str | None) -> None:
        def reached(fault: f.DropSocket) -> bool:
            return fault.after_messages is not None and self.sent >= fault.after_messages

        fault = self.hub.faults.take(f.DropSocket, job_id, reached)
        if fault is not None:
            self.hub.record.add(
                "fault",
                {"fault": "drop-socket", "afterMessages": fault.after_messages},
                connection_id=self.id,
            )
            self.drop(fault.close_code)

    # ------------------------------------------------------------------ closing

    def drop(self, close_code: int | None) -> None:
        """Drop the socket: abort the TCP connection, or close with ``close_code``."""
        if close_code is not None:
            self.close_soon(close_code, "dropped by fault injection")
            return
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket with a close frame, without waiting here."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._wakeup.set()
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        self.hub.record.add("ws_closing", {"code": code, "reason": reason}, connection_id=self.id)
        closing = self.ws.close(code=code, message=reason.encode())
        try:
            await asyncio.wait_for(closing, self.hub.config.close_timeout_seconds)
        except TimeoutError:
            # A client that stopped reading leaves no room for the close frame, and a plain
            # transport close would wait for the buffer to drain: cut the TCP connection.
            transport = self.request.transport
            if transport is not None:
                transport.abort()
        except Exception:
            pass  # the peer is gone already: nothing left to close

    # ------------------------------------------------------------------ keep-alive

    async def run_watchdog(self) -> None:
        """Ping at the configured interval; close on missed pong or on token expiry."""
        config = self.hub.config
        next_ping = time.monotonic() + config.ping_interval_seconds
        while not self.closed:
            now = time.monotonic()
            if now >= self.token_expires_at:
                self.close_soon(CLOSE_POLICY, "token expired")
                return
            if now - self.last_pong_at >= config.pong_timeout_seconds:
                self.close_soon(CLOSE_IDLE, "no pong received")
                return
            if now >= next_ping:
                await self._ping()
                next_ping = now + config.ping_interval_seconds
            deadline = min(
                next_ping, self.token_expires_at, self.last_pong_at + config.pong_timeout_seconds
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._watch.wait(), max(deadline - time.monotonic(), 0.0) + 0.001
                )
            self._watch.clear()

    def token_expired(self) -> None:
        """The socket's token was expired by a fault: close as at expiry."""
        self.token_expires_at = time.monotonic()
        self._watch.set()

    async def _ping(self) -> None:
        self._ping_counter += 1
        payload = f"ping-{self._ping_counter}"
        self.hub.record.add("ping", {"payload": payload}, connection_id=self.id)
        if self.hub.config.json_pings:
            self.enqueue([m.encode_server_message(m.PingReceived({"ping": payload}))])
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.ping(payload.encode())

    def pong_received(self, payload: object) -> None:
        """Record a pong (frame or JSON) and count it unless pongs are being ignored."""
        self.hub.record.add(
            "pong", {"payload": payload, "ignored": self.ignore_pongs}, connection_id=self.id
        )
        if not self.ignore_pongs:
            self.last_pong_at = time.monotonic()

    # ------------------------------------------------------------------ receiving

    async def on_frame(self, message: WSMessage) -> None:
        """Handle one frame from the client."""
        if message.type == WSMsgType.TEXT:
            self.on_text(message.data)
        elif message.type == WSMsgType.PING:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.pong(message.data)
        elif message.type == WSMsgType.PONG:
            self.pong_received(message.data.decode(errors="replace"))
        elif message.type == WSMsgType.BINARY:
            self.hub.record.add("ws_received", {"binary": len(message.data)}, connection_id=self.id)
            self.send_error(m.INVALID_MESSAGE, "binary frames are not accepted; send JSON text")

    def on_text(self, text: str) -> None:
        """Decode and act on one client message; anything unusable gets an ERROR message."""
        try:
            message = m.decode_client_message(text)
        except RemoteProtocolError as exc:
            # The text may hold a token (a broken UPDATE_TOKEN): record only its size.
            self.hub.record.add(
                "ws_received", {"invalid": str(exc), "length": len(text)}, connection_id=self.id
            )
            self.send_error(m.INVALID_MESSAGE, f"{exc}")
            return
        if isinstance(message, m.UpdateToken):
            self._update_token(message.token)
            return
        self.hub.record.add("ws_received", {"text": text}, connection_id=self.id)
        match message:
            case m.Subscribe():
                self._subscribe(message)
            case m.AppMessageResponse():
                self.hub.answer_app_message(self, message, dict(message.controls or {}))
            case m.Pong():
                self.pong_received(message.payload)

    def _update_token(self, token: str) -> None:
        record = self.hub.tokens.check(token)
        self.hub.record.add(
            "update_token",
            {"token": token_fingerprint(token), "valid": record is not None},
            connection_id=self.id,
        )
        if record is None:
            # No acknowledgement for a good token (§A3); a bad one keeps the old expiry.
            self.send_error(m.INVALID_TOKEN, "UPDATE_TOKEN carried an unknown or expired token")
            return
        self.token_expires_at = record.expires_at

    def _subscribe(self, message: m.Subscribe) -> None:
        for item in message.subscriptions:
            job = self.hub.jobs.get(item.compute_job_id)
            self.hub.record.add(
                "subscribe",
                {
                    "executionAttempts": item.execution_attempts,
                    "lastRunLogLine": item.last_run_log_line,
                    "found": job is not None,
                },
                connection_id=self.id,
                compute_job_id=item.compute_job_id,
            )
            if job is None:
                self.send_error(
                    m.COMPUTE_JOB_NOT_FOUND,
                    f"no compute job with id {item.compute_job_id!r}",
                    item.compute_job_id,
                )
                continue
            job.connection_id = self.id
            self.hub.send_to(self, job, job.report(current=True))
            # Per §B4.6 a finished job gets nothing more; a running one gets the missed lines.
            if not job.terminal and job.run_log_messages:
                self.hub.replay(self, job, item.last_run_log_line)
            pending = job.pending_app_message
            if pending is not None and self.hub.config.resend_app_messages_on_subscribe:
                # §B4.6: a still-unanswered APP_MESSAGE is sent again, same appMessageId.
                self.hub.send_app_message(job, pending, connection=self)


async def handle_socket(request: web.Request) -> web.StreamResponse:
    """The WebSocket endpoint: check the token, upgrade, then serve the socket until it closes."""
    hub = request.app[HUB_KEY]
    token = bearer_from_header(request.headers.get(hdrs.AUTHORIZATION))
    refusal = hub.faults.take(f.RefuseHandshake)
    if refusal is not None:
        hub.record.add("handshake_refused", {"status": refusal.status, "fault": True})
        return error_response(refusal.status, "handshake refused by fault injection")
    token_record = hub.tokens.check(token)
    if token_record is None:
        hub.record.add("handshake_refused", {"status": 401, "fault": False})
        return error_response(401, "missing, unknown or expired bearer token")
    ws = web.WebSocketResponse(
        autoping=False,
        compress=True,
        heartbeat=None,
        max_msg_size=hub.config.max_message_bytes,
        timeout=1.0,
    )
    if not ws.can_prepare(request).ok:
        return error_response(400, "this endpoint only speaks WebSocket (send an upgrade request)")
    connection_id = str(uuid.uuid4())
    ws.headers[CONNECTION_ID_HEADER] = connection_id
    await ws.prepare(request)
    expires_at = token_record.expires_at
    expiry = hub.faults.take(f.TokenExpiry)
    if expiry is not None:
        expires_at = min(expires_at, time.monotonic() + expiry.seconds)
    ignore_pongs = hub.faults.take(f.IgnorePongs) is not None
    connection = Connection(hub, request, ws, connection_id, expires_at, ignore_pongs)
    hub.connections[connection_id] = connection
    hub.record.add(
        "ws_open",
        {"token": token_fingerprint(token or ""), "compressed": ws.compress != 0},
        connection_id=connection_id,
    )
    await _serve(connection)
    return ws


async def _serve(connection: Connection) -> None:
    tasks = [
        asyncio.create_task(connection.run_writer()),
        asyncio.create_task(connection.run_watchdog()),
    ]
    try:
        async for message in connection.ws:
            await connection.on_frame(message)
    finally:
        connection.closed = True
        for task in tasks:
            task.cancel()
        connection.hub.connections.pop(connection.id, None)
        connection.hub.record.add(
            "ws_close",
            {
                "code": connection.close_code or connection.ws.close_code,
                "by": "server" if connection.close_code else "client",
                "sent": connection.sent,
            },
            connection_id=connection.id,
        )
