"""The blocking driver's socket I/O with ``websocket-client``: open, read in a thread, close.

The twin of :mod:`.async_handshake`. Handshake failures become :mod:`airflow_insight.exceptions`
types (:mod:`.errors`) whose messages carry the HTTP status only, never a header, so never the
token.
"""

from __future__ import annotations

import contextlib
import threading
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
from airflow_insight.transport.sync_frames import cap_message_size

__all__ = ["SocketOpener", "close_socket", "open_socket", "start_reader"]

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
    cap_message_size(ws)
    headers = ws.getheaders() or {}
    connection_id = headers.get(CONNECTION_ID_HEADER)
    return ws, connection_id if isinstance(connection_id, str) and connection_id else None


#: Called by the reader thread with each text frame; returns False to stop reading.
FrameSink = Callable[[str | bytes], bool]
#: How long :func:`close_socket` waits for the reader thread (it ends once the socket is shut).
READER_JOIN_SECONDS = 2.0


def start_reader(
    ws: websocket.WebSocket, on_frame: FrameSink, on_end: Callable[[], None]
) -> threading.Thread:
    """Read every text frame of ``ws`` in a daemon thread into ``on_frame``, then call
    ``on_end``. ``websocket-client`` answers ping frames inside ``recv_data``, so pongs go out
    whatever the thread that follows the jobs is doing."""

    def read() -> None:
        while True:
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue  # The socket timeout only bounds sends; reading waits for ever.
            except (websocket.WebSocketException, OSError, ValueError):
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            is_data = opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)
            if is_data and not on_frame(data):
                break
        on_end()

    reader = threading.Thread(target=read, name="insight-socket-reader", daemon=True)
    reader.start()
    return reader


def close_socket(ws: websocket.WebSocket, reader: threading.Thread | None) -> None:
    """Close ``ws`` and wait (bounded) for its reader thread to end."""
    with contextlib.suppress(websocket.WebSocketException, OSError):
        ws.send_close()
    # shutdown(2) wakes the reader thread out of recv (a bare close would not, on Linux): it
    # reports the end and exits. Both calls are untyped in the library.
    abort: Callable[[], None] = ws.abort
    release: Callable[[], None] = ws.shutdown
    with contextlib.suppress(websocket.WebSocketException, OSError):
        abort()
    release()
    if reader is not None:
        reader.join(timeout=READER_JOIN_SECONDS)
