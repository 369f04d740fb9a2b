"""A size cap on what the blocking driver's WebSocket library reads: one message at most
:data:`~airflow_insight.protocol.inbox.MAX_MESSAGE_BYTES`.

``websocket-client`` has no such option: it reads a frame of any announced length into memory,
and joins fragments without end, so a hostile server could make it allocate gigabytes. The cap
is checked on the frame's announced length, before its payload is read, and on the joined
fragments of a message; past it the read fails (``WebSocketPayloadException``), the reader
thread ends and the core treats the socket as lost (it reconnects, and the server replays).
The asyncio twin gets the same cap from ``websockets`` (``max_size``).
"""

from __future__ import annotations

from typing import Any

import websocket
from websocket._abnf import continuous_frame, frame_buffer

from airflow_insight.protocol.inbox import MAX_MESSAGE_BYTES

__all__ = ["cap_message_size"]


def _too_large(size: int) -> websocket.WebSocketPayloadException:
    return websocket.WebSocketPayloadException(
        f"a WebSocket message of {size} bytes, over the {MAX_MESSAGE_BYTES} this client reads"
    )


class _CappedFrames(frame_buffer):
    """Refuses a frame whose announced length is over the cap, before reading its payload."""

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > MAX_MESSAGE_BYTES:
            raise _too_large(self.length)


class _CappedMessages(continuous_frame):
    """Refuses a fragmented message once its joined fragments pass the cap."""

    def add(self, frame: Any) -> None:
        super().add(frame)
        data = self.cont_data[1] if self.cont_data else b""
        if len(data) > MAX_MESSAGE_BYTES:
            self.cont_data = None
            raise _too_large(len(data))


def cap_message_size(ws: websocket.WebSocket) -> None:
    """Make ``ws`` (freshly opened, nothing read yet) refuse messages over the cap."""
    skip = ws.frame_buffer.skip_utf8_validation
    ws.frame_buffer = _CappedFrames(ws._recv, skip)
    ws.cont_frame = _CappedMessages(ws.cont_frame.fire_cont_frame, skip)
