"""A TCP relay on 127.0.0.1 that can play a dead server: the tests point the client at it.

The in-process emulator keeps its jobs in memory, so killing it would lose them; the relay stands
in front of it instead. :meth:`TcpRelay.kill` is a server that died: the listening socket and
every relayed connection close, new connections are refused (nothing listens on the port).
:meth:`TcpRelay.revive` is the server back: the relay listens again on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

#: How often the accept loop looks at its stop flag (closing a socket does not wake accept()).
_ACCEPT_POLL_SECONDS = 0.1
_CHUNK = 65536


class TcpRelay:
    """Relays each connection to ``127.0.0.1:<port>`` to ``target``, byte for byte."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = 0
        #: Connections accepted so far (all lives of the relay).
        self.accepted = 0

    def __enter__(self) -> TcpRelay:
        self.revive()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    @property
    def alive(self) -> bool:
        """Whether the relay is listening."""
        return self._listener is not None

    def revive(self) -> None:
        """Listen (again): on a free port the first time, on the same port after that."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(_ACCEPT_POLL_SECONDS)
        self.port = listener.getsockname()[1]
        self._stop = threading.Event()
        self._listener = listener
        self._accepting = threading.Thread(
            target=self._accept_loop, args=(listener, self._stop), name="relay-accept", daemon=True
        )
        self._accepting.start()

    def kill(self) -> None:
        """Die: stop listening (connections are refused) and close every relayed connection."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stop.set()
        if self._accepting is not None:
            self._accepting.join(timeout=5.0)
        listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            _close(sock)

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self._target, timeout=5.0)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if stop.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._connections.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), name="relay-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy one direction until either side closes; then close both."""
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    """Shut down (wakes a thread blocked in recv) and close, ignoring a socket already gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
