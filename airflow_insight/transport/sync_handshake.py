"""Open the progress WebSocket with ``websocket-client``: the blocking driver's handshake.

The twin of :mod:`.async_handshake`. Handshake failures become :mod:`airflow_insight.exceptions`
types (:mod:`.errors`) whose messages carry the HTTP status only, never a header, so never the
token.
"""

from __future__ import annotations

from collections.abc import Callable

import websocket

from airflow_insight.protocol.wire import CONNECTION_ID_HEADER
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.errors import (
    handshake_error,
    socket_open_failed,
    socket_open_timed_out,
)
from airflow_insight.transport.network import tls_context

__all__ = ["SocketOpener", "open_socket"]

#: Opens the progress socket with a bearer token: ``(socket, connection-id)``.
SocketOpener = Callable[[ConnectionSettings, str], "tuple[websocket.WebSocket, str | None]"]


def open_socket(settings: ConnectionSettings, token: str) -> tuple[websocket.WebSocket, str | None]:
    """Open the progress WebSocket with the bearer token; return it and its ``connection-id``."""
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
