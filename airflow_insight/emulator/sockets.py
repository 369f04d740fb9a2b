"""One progress socket as the emulator's state sees it: its token, its pongs and its send queue.

Plain Python with no aiohttp: the hub and the client-message handling queue frames and ask for
a close here, and the aiohttp pump (``connections``) behind the :class:`SocketLink` writes them.
A socket without a pump still works: tests read what it would send with :meth:`Socket.take_sent`.

Close codes (the documentation names none, §B9 #4): 1001 for a missed pong and for emulator
shutdown, 1008 for an expired token and for a client too slow to keep up.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Protocol

from airflow_insight.protocol import messages as m

CLOSE_IDLE = 1001
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


class SocketLink(Protocol):
    """What a socket asks of the connection that carries it."""

    def wake(self) -> None:
        """Frames were queued or the socket closed: the writer looks again."""

    def expiry_moved(self) -> None:
        """The token's expiry moved earlier: the keep-alive looks again before its deadline."""

    def close(self, code: int, reason: str) -> None:
        """Send a close frame soon, without waiting here."""

    def abort(self) -> None:
        """Cut the TCP connection now (no close frame)."""

    async def shut_down(self, code: int, message: bytes) -> None:
        """Close the socket because the emulator stops."""


class _Unlinked:
    """The link of a socket no connection carries: every request stays as the socket's state."""

    def wake(self) -> None:
        """Nothing to wake: ``Socket.take_sent`` reads the queue."""

    def expiry_moved(self) -> None:
        """Nothing to wake: ``Socket.token_expires_at`` holds the expiry."""

    def close(self, code: int, reason: str) -> None:
        """Nothing to close: ``Socket.close_code`` holds the code."""

    def abort(self) -> None:
        """Nothing to cut: ``Socket.closed`` says the socket ended."""

    async def shut_down(self, code: int, message: bytes) -> None:
        """Nothing to close."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    """One queued text frame, the job it is about, and what to run once it is written."""

    text: str
    job_id: str | None
    on_sent: Callable[[], None] | None


class Socket:
    """One open progress socket: token expiry, pong bookkeeping and the queue of frames to send."""

    def __init__(
        self,
        connection_id: str,
        token_expires_at: float,
        *,
        send_queue_limit: int,
        ignore_pongs: bool = False,
        link: SocketLink | None = None,
    ) -> None:
        self.id = connection_id
        self.token_expires_at = token_expires_at
        self.ignore_pongs = ignore_pongs
        self.send_queue_limit = send_queue_limit
        self.link: SocketLink = link or _Unlinked()
        self.closed = False
        #: The close code the emulator chose, when it closed the socket itself.
        self.close_code: int | None = None
        self.last_pong_at = time.monotonic()
        self._queue: collections.deque[Outgoing] = collections.deque()

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
        self._queue.extend(Outgoing(text, job_id, on_sent) for text in texts)
        if len(self._queue) > self.send_queue_limit:
            self._queue.clear()
            self.close_soon(CLOSE_POLICY, "client too slow")
            return
        self.link.wake()

    def send_error(self, error_type: str, message: str, job_id: str | None = None) -> None:
        """Queue an ERROR message."""
        text = m.encode_server_message(m.ErrorReported(job_id, error_type, message))
        self.enqueue([text], job_id)

    def next_outgoing(self) -> Outgoing | None:
        """The next frame to write, unless the queue is empty or the socket closed."""
        if self.closed or not self._queue:
            return None
        return self._queue.popleft()

    def take_sent(self) -> list[str]:
        """Every queued text, in order, as if written now (``on_sent`` callbacks run)."""
        texts = []
        while (outgoing := self.next_outgoing()) is not None:
            texts.append(outgoing.text)
            if outgoing.on_sent is not None:
                outgoing.on_sent()
        return texts

    # ------------------------------------------------------------------ closing

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket with a close frame; nothing more is sent on it."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.link.wake()
        self.link.close(code, reason)

    def drop(self, close_code: int | None) -> None:
        """Drop the socket: abort the TCP connection, or close with ``close_code``."""
        if close_code is not None:
            self.close_soon(close_code, "dropped by fault injection")
            return
        self.closed = True
        self.link.abort()

    # ------------------------------------------------------------------ keep-alive

    def token_expired(self) -> None:
        """The socket's token was expired by a fault: close as at expiry."""
        self.token_expires_at = time.monotonic()
        self.link.expiry_moved()

    def pong_counted(self) -> None:
        """A pong arrived and counts (pongs are not being ignored)."""
        self.last_pong_at = time.monotonic()
