"""Reading a REST answer's body within bounds: so many bytes at most, within a total deadline.

``requests`` reads a whole body into memory whatever its size, and its read timeout bounds each
read of the socket, not the answer: a server that sends one byte a second never trips it. The
REST client therefore asks for the body as a stream and reads it here, one socket read at a time,
checking after each read how much arrived and how long the answer has taken. A hostile or broken
server (or a proxy) then costs at most the limit in memory and the deadline (plus one read
timeout) in time, and the call fails with an error that says what happened.

The limits (:data:`MAX_JSON_BODY_BYTES`, :data:`MAX_BODY_BYTES`) count decoded bytes, so a small
compressed body that inflates to gigabytes is stopped too. The status line and headers are read
by ``requests`` before this, bounded per read only (their size is bounded by ``http.client``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
import urllib3

from airflow_insight.exceptions import InsightTimeout, RemoteProtocolError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_BODY_BYTES",
    "BodyLimits",
    "read_body",
]

#: A JSON answer (a job document, a token, an error) is a few kB; 16 MiB is far beyond any of
#: them and still small enough for a task's or a triggerer's memory.
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024
#: A run log or a download: an hours-long solve writes a few MB of log; 256 MiB leaves room for
#: the largest result files while a flood of hundreds of MB is cut off.
MAX_BODY_BYTES = 256 * 1024 * 1024
#: A JSON answer must have arrived within this many read timeouts of the request...
JSON_DEADLINE_READ_TIMEOUTS = 3.0
#: ...and a run log or download within this long at least (large, over slow links).
MIN_BODY_DEADLINE_SECONDS = 600.0
#: Most bytes taken from the socket in one read.
CHUNK_BYTES = 64 * 1024


class BodyLimits:
    """The bounds for one answer: most bytes and the total deadline in seconds."""

    __slots__ = ("deadline_seconds", "max_bytes")

    def __init__(self, max_bytes: int, deadline_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds

    @classmethod
    def for_answer(cls, *, json: bool, read_timeout_seconds: float) -> BodyLimits:
        """The bounds of a JSON answer, or of a run log or download."""
        deadline = JSON_DEADLINE_READ_TIMEOUTS * read_timeout_seconds
        if json:
            return cls(MAX_JSON_BODY_BYTES, deadline)
        return cls(MAX_BODY_BYTES, max(deadline, MIN_BODY_DEADLINE_SECONDS))


def read_body(
    response: requests.Response,
    limits: BodyLimits,
    *,
    what: str,
    started: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Read the streamed body of ``response`` into it (``.content`` then works as usual).

    ``started`` is when the request was sent (``clock`` time). Raises
    :class:`~airflow_insight.exceptions.RemoteProtocolError` past the size limit and
    :class:`~airflow_insight.exceptions.InsightTimeout` past the deadline; ``requests``
    exceptions for a failed read (the caller maps those as for any exchange).
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := _read_once(response):
            size += len(chunk)
            if size > limits.max_bytes:
                raise RemoteProtocolError(
                    f"{what}: the answer's body is larger than {limits.max_bytes // 2**20} MiB,"
                    " the most this client reads; a proxy or a broken server may be answering"
                    " instead of Insight"
                )
            chunks.append(chunk)
            if clock() - started > limits.deadline_seconds:
                raise InsightTimeout(
                    f"{what}: the answer did not arrive in full within"
                    f" {limits.deadline_seconds:g} s (it arrived too slowly); check the network"
                    " and the server's load, or raise read_timeout_seconds"
                )
    finally:
        response.close()
    response._content = b"".join(chunks)  # What ``requests`` itself stores once it has read.


def _read_once(response: requests.Response) -> bytes:
    """At most one socket read of the body; urllib3's failures as ``requests`` exceptions."""
    try:
        chunk: bytes = response.raw.read1(CHUNK_BYTES, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    return chunk
