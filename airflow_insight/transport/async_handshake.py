"""Open the progress WebSocket with ``websockets``: the asyncio driver's handshake.

The twin of :mod:`.sync_handshake`. Handshake failures become :mod:`airflow_insight.exceptions`
types (:mod:`.errors`) whose messages carry the HTTP status only, never a header, so never the
token. permessage-deflate is offered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from airflow_insight.protocol.inbox import MAX_MESSAGE_BYTES
from airflow_insight.protocol.wire import CONNECTION_ID_HEADER
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.errors import (
    handshake_error,
    socket_open_failed,
    socket_open_timed_out,
)
from airflow_insight.transport.network import tls_context

__all__ = ["MAX_MESSAGE_BYTES", "SocketOpener", "open_socket"]

#: Opens the progress socket with a bearer token: ``(socket, connection-id)``.
SocketOpener = Callable[[ConnectionSettings, str], Awaitable[tuple[ClientConnection, str | None]]]
#: Frames ``websockets`` buffers before it stops reading the socket, and the count it resumes at.
#: The driver's own inbox is the bound (:mod:`airflow_insight.protocol.inbox`); while its reader
#: waits for room, a ping can be read only once the library resumes, so it resumes as soon as one
#: frame is taken (the default resumes at a quarter of 16 frames: a dozen frames' forwarding).
MAX_QUEUED_FRAMES = (4, 3)


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to ``websockets``: its DEBUG output prints the ``Authorization``
    header and ``UPDATE_TOKEN`` frames, so DEBUG stays off whatever the logging setup says."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


# Named after the driver that uses it: logging setups configure it under that name.
_WEBSOCKETS_LOG = _QuietLogger(
    logging.getLogger("airflow_insight.transport.async_driver.websockets")
)


async def open_socket(
    settings: ConnectionSettings, token: str
) -> tuple[ClientConnection, str | None]:
    """Open the progress WebSocket with the bearer token; return it and its ``connection-id``."""
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
            max_queue=MAX_QUEUED_FRAMES,
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
