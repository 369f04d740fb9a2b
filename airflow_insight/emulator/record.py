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
    ping, pong, update_token, subscribe, app_message, app_message_written, app_message_response,
    app_message_timeout, solve_finished, job_forgotten, delete, handshake_refused, fault,
    job_status, gate_opened. ``at`` is ``time.monotonic()`` of this process.
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

    def app_message_exchanges(self, compute_job_id: str | None = None) -> list[dict[str, Any]]:
        """Every APP_MESSAGE sent and what became of it, in the order first sent.

        One dict per ``appMessageId``: ``appMessageId``, ``computeJobId``, ``appMessageType``,
        ``sentAt`` (a list: the first send, then each re-send after a SUBSCRIBE; when it was
        queued on the socket), ``writtenAt`` (a list: when each was written to the socket),
        ``connectionIds`` (where each send went, None when the job had no socket),
        ``answeredAt`` (the matching answer, None if none), ``interruptSolve``, ``controls``,
        ``timedOutAt`` (None unless the answer limit ran out). Times are ``time.monotonic()``.
        """
        exchanges: dict[str, dict[str, Any]] = {}
        for entry in self.entries():
            if compute_job_id is not None and entry.compute_job_id != compute_job_id:
                continue
            message_id = str(entry.data.get("appMessageId"))
            if entry.kind == "app_message":
                exchange = exchanges.setdefault(
                    message_id,
                    {
                        "appMessageId": message_id,
                        "computeJobId": entry.compute_job_id,
                        "appMessageType": entry.data.get("appMessageType"),
                        "sentAt": [],
                        "writtenAt": [],
                        "connectionIds": [],
                        "answeredAt": None,
                        "interruptSolve": None,
                        "controls": None,
                        "timedOutAt": None,
                    },
                )
                exchange["sentAt"].append(entry.at)
                exchange["connectionIds"].append(entry.connection_id)
            elif message_id in exchanges and entry.kind == "app_message_written":
                exchanges[message_id]["writtenAt"].append(entry.at)
            elif message_id in exchanges and entry.kind == "app_message_response":
                if entry.data.get("matched") and exchanges[message_id]["answeredAt"] is None:
                    exchanges[message_id].update(
                        answeredAt=entry.at,
                        interruptSolve=entry.data.get("interrupt"),
                        controls=entry.data.get("controls"),
                    )
            elif message_id in exchanges and entry.kind == "app_message_timeout":
                exchanges[message_id]["timedOutAt"] = entry.at
        return list(exchanges.values())
