"""A thread-safe record of what the emulator received and sent; tokens are never kept."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import threading
import time
from typing import Any


def token_fingerprint(token: str) -> str:
    """A short, one-way name for a token so records can tell tokens apart without holding them."""
    return "tok-" + hashlib.sha256(token.encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One recorded event.

    ``kind`` is one of http_request, http_response, ws_open, ws_close, ws_received, ws_sent,
    ping, pong, update_token, subscribe, app_message_response, delete, handshake_refused,
    fault, job_status.
    """

    kind: str
    data: dict[str, Any]
    connection_id: str | None = None
    compute_job_id: str | None = None
    at: float = dataclasses.field(default_factory=time.monotonic)


class Record:
    """Everything the emulator received and sent, in order; safe to read from any thread."""

    def __init__(self, limit: int | None = None) -> None:
        self._entries: collections.deque[Entry] = collections.deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        connection_id: str | None = None,
        compute_job_id: str | None = None,
    ) -> None:
        """Append one entry."""
        entry = Entry(kind, data, connection_id, compute_job_id)
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[Entry]:
        """A snapshot of all entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._entries.clear()

    def of_kind(self, kind: str) -> list[Entry]:
        """The entries of one kind."""
        return [entry for entry in self.entries() if entry.kind == kind]

    def messages_sent(
        self, compute_job_id: str | None = None, connection_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The JSON messages sent over sockets (parsed), optionally for one job or socket.

        Frames that are not JSON (the malformed-json fault) are left out.
        """
        result: list[dict[str, Any]] = []
        for entry in self.of_kind("ws_sent"):
            if compute_job_id is not None and entry.compute_job_id != compute_job_id:
                continue
            if connection_id is not None and entry.connection_id != connection_id:
                continue
            try:
                message = json.loads(entry.data.get("text", ""))
            except ValueError:
                continue
            if isinstance(message, dict):
                result.append(message)
        return result

    def requests(self, method: str | None = None, path: str | None = None) -> list[Entry]:
        """The HTTP requests received, optionally of one method and path (without prefix)."""
        return [
            entry
            for entry in self.of_kind("http_request")
            if (method is None or entry.data.get("method") == method.upper())
            and (path is None or entry.data.get("path") == path)
        ]
