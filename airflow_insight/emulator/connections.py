"""The progress WebSocket endpoint (§B4): the aiohttp pump between a socket and the emulator.

Each socket runs three parts: the handler reads frames and hands them to
:mod:`~airflow_insight.emulator.client_messages`, a writer drains the socket's send queue (so a
job's timeline never waits for a slow client), and a watchdog pings, checks for missed pongs and
closes the socket when its token expires. Pings are sent by the watchdog with ``autoping=False``
so every pong can be recorded. What a message does and answers is decided in the plain parts
(``client_messages``, ``sockets``); faults that act on the wire (drop after N messages, refused
handshake, short token, ignored pongs) are applied here, where the wire is
(docs/design.md#the-emulators-rooms).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from aiohttp import WSMessage, WSMsgType, hdrs, web

from airflow_insight.emulator import client_messages
from airflow_insight.emulator import faults as f
from airflow_insight.emulator.app_keys import HUB_KEY
from airflow_insight.emulator.error_bodies import error_response
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.record import token_fingerprint
from airflow_insight.emulator.sockets import CLOSE_IDLE, CLOSE_POLICY, Socket
from airflow_insight.emulator.tokens import bearer_from_header
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.wire import CONNECTION_ID_HEADER


class Pump:
    """Moves one socket's frames between aiohttp and the plain parts; the socket's link."""

    def __init__(
        self, hub: Hub, request: web.Request, ws: web.WebSocketResponse, socket: Socket
    ) -> None:
        self.hub = hub
        self.request = request
        self.ws = ws
        self.socket = socket
        self.sent = 0
        self._wakeup = asyncio.Event()
        #: Set to make the watchdog look again before its deadline.
        self._watch = asyncio.Event()
        self._ping_counter = 0
        self._closing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ the socket's link

    def wake(self) -> None:
        """Frames were queued or the socket closed: the writer looks again."""
        self._wakeup.set()

    def expiry_moved(self) -> None:
        """The token's expiry moved earlier: the watchdog looks again."""
        self._watch.set()

    def close(self, code: int, reason: str) -> None:
        """Close with a close frame, in a task of its own (kept here, safe from the GC)."""
        self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    def abort(self) -> None:
        """Cut the TCP connection now."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def _close(self, code: int, reason: str) -> None:
        self.hub.record.add(
            "ws_closing", {"code": code, "reason": reason}, connection_id=self.socket.id
        )
        closing = self.ws.close(code=code, message=reason.encode())
        try:
            await asyncio.wait_for(closing, self.hub.config.close_timeout_seconds)
        except TimeoutError:
            # A client that stopped reading leaves no room for the close frame, and a plain
            # transport close would wait for the buffer to drain: cut the TCP connection.
            self.abort()
        except Exception:
            pass  # the peer is gone already: nothing left to close

    async def shut_down(self, code: int, message: bytes) -> None:
        """Close the socket because the emulator stops."""
        await self.ws.close(code=code, message=message)

    # ------------------------------------------------------------------ sending

    async def run_writer(self) -> None:
        """Drain the send queue until the socket closes."""
        socket = self.socket
        record = self.hub.record
        record_messages = self.hub.config.record_messages
        while not socket.closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            while (outgoing := socket.next_outgoing()) is not None:
                try:
                    await self.ws.send_str(outgoing.text)
                except (ConnectionError, RuntimeError):
                    socket.closed = True
                    return
                self.sent += 1
                if record_messages:
                    record.add(
                        "ws_sent",
                        {"text": outgoing.text},
                        connection_id=socket.id,
                        compute_job_id=outgoing.job_id,
                    )
                if outgoing.on_sent is not None:
                    outgoing.on_sent()
                self._drop_after_messages(outgoing.job_id)

    def _drop_after_messages(self, job_id: str | None) -> None:
        def reached(fault: f.DropSocket) -> bool:
            return fault.after_messages is not None and self.sent >= fault.after_messages

        fault = self.hub.faults.take(f.DropSocket, job_id, reached)
        if fault is not None:
            self.hub.record.add(
                "fault",
                {"fault": "drop-socket", "afterMessages": fault.after_messages},
                connection_id=self.socket.id,
            )
            self.socket.drop(fault.close_code)

    # ------------------------------------------------------------------ keep-alive

    async def run_watchdog(self) -> None:
        """Ping at the configured interval; close on missed pong or on token expiry."""
        socket = self.socket
        config = self.hub.config
        next_ping = time.monotonic() + config.ping_interval_seconds
        while not socket.closed:
            now = time.monotonic()
            if now >= socket.token_expires_at:
                socket.close_soon(CLOSE_POLICY, "token expired")
                return
            if now - socket.last_pong_at >= config.pong_timeout_seconds:
                socket.close_soon(CLOSE_IDLE, "no pong received")
                return
            if now >= next_ping:
                await self._ping()
                next_ping = now + config.ping_interval_seconds
            deadline = min(
                next_ping,
                socket.token_expires_at,
                socket.last_pong_at + config.pong_timeout_seconds,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._watch.wait(), max(deadline - time.monotonic(), 0.0) + 0.001
                )
            self._watch.clear()

    async def _ping(self) -> None:
        self._ping_counter += 1
        payload = f"ping-{self._ping_counter}"
        self.hub.record.add("ping", {"payload": payload}, connection_id=self.socket.id)
        if self.hub.config.json_pings:
            self.socket.enqueue([m.encode_server_message(m.PingReceived({"ping": payload}))])
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.ping(payload.encode())

    # ------------------------------------------------------------------ receiving

    async def on_frame(self, message: WSMessage) -> None:
        """Hand one frame from the client to the plain parts (a PING is answered here)."""
        if message.type == WSMsgType.TEXT:
            client_messages.receive_text(self.hub, self.socket, message.data)
        elif message.type == WSMsgType.PING:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.pong(message.data)
        elif message.type == WSMsgType.PONG:
            payload = message.data.decode(errors="replace")
            client_messages.receive_pong(self.hub, self.socket, payload)
        elif message.type == WSMsgType.BINARY:
            client_messages.receive_binary(self.hub, self.socket, len(message.data))


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
    socket = Socket(
        connection_id,
        expires_at,
        send_queue_limit=hub.config.send_queue_limit,
        ignore_pongs=hub.faults.take(f.IgnorePongs) is not None,
    )
    pump = Pump(hub, request, ws, socket)
    socket.link = pump
    hub.connections[connection_id] = socket
    hub.record.add(
        "ws_open",
        {"token": token_fingerprint(token or ""), "compressed": ws.compress != 0},
        connection_id=connection_id,
    )
    await _serve(pump)
    return ws


async def _serve(pump: Pump) -> None:
    socket = pump.socket
    tasks = [
        asyncio.create_task(pump.run_writer()),
        asyncio.create_task(pump.run_watchdog()),
    ]
    try:
        async for message in pump.ws:
            await pump.on_frame(message)
    finally:
        socket.closed = True
        for task in tasks:
            task.cancel()
        pump.hub.connections.pop(socket.id, None)
        pump.hub.record.add(
            "ws_close",
            {
                "code": socket.close_code or pump.ws.close_code,
                "by": "server" if socket.close_code else "client",
                "sent": pump.sent,
            },
            connection_id=socket.id,
        )
