"""The calls the core asks its driver to perform, and what each answer means, decided once.

The core asks for I/O as values with ids (:data:`~airflow_insight.protocol.events.Call`: mint a
token, open the socket, get a job, fetch a run log) and keeps them in :class:`OutstandingCalls`
until the driver hands back exactly one answer: a result or an :class:`InsightError`. An answer
for an id that is not outstanding is a driver bug (:class:`LocalProtocolError`).

:func:`meaning` is the one place that says what an error means to the core (no driver decides
it):

* ``JobNotFound`` (HTTP 404): the job is gone; it finishes as ``DELETED``.
* ``AuthenticationError`` (401 after the REST client's fresh token, or a refused handshake):
  the 401 rule of :mod:`.tokens`: one fresh token and one more try, then it is permanent.
* any other error with ``permanent`` set (403, a configuration error): following the job (or
  every job, for a token) fails with it.
* ``TransportError`` (no answer at all): survived, asked again later; it does not count as an
  answer from the server for the unreachable limit.
* anything else (5xx after retries, a bad document): survived, asked again later.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from airflow_insight.exceptions import (
    AuthenticationError,
    InsightError,
    JobNotFound,
    LocalProtocolError,
    TransportError,
)
from airflow_insight.protocol.events import Call

__all__ = ["ErrorMeaning", "OutstandingCalls", "Purpose", "meaning"]

_C = TypeVar("_C", bound=Call)


class ErrorMeaning(enum.Enum):
    """What a failed call means to the core."""

    NOT_FOUND = "not_found"
    REFUSED = "refused"
    PERMANENT = "permanent"
    NO_ANSWER = "no_answer"
    TRANSIENT = "transient"


def meaning(error: InsightError) -> ErrorMeaning:
    """Classify a failed call's error; see the module docstring."""
    if isinstance(error, JobNotFound):
        return ErrorMeaning.NOT_FOUND
    if isinstance(error, AuthenticationError):
        return ErrorMeaning.REFUSED
    if error.permanent:
        return ErrorMeaning.PERMANENT
    if isinstance(error, TransportError):
        return ErrorMeaning.NO_ANSWER
    return ErrorMeaning.TRANSIENT


class Purpose(enum.Enum):
    """Why a call was made, where the answer's use depends on it (token mints)."""

    FIRST_TOKEN = "first_token"  # start(): without it nothing can go on
    REFRESH = "refresh"  # a third of the lifetime is left
    CONNECT = "connect"  # a token to open the socket with
    AFTER_REFUSAL = "after_refusal"  # the handshake was refused: one fresh token (401 rule)
    SOCKET = "socket"
    CHECK = "check"
    RUN_LOG = "run_log"


class OutstandingCalls:
    """The calls asked for and not answered yet, by id."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[Call, Purpose, int]] = {}
        self._next_id = 1

    def issue(self, make: Callable[[int], _C], purpose: Purpose, refusals: int = 0) -> _C:
        """Create a call with a new id (``make(call_id)``) and remember it."""
        call_id, self._next_id = self._next_id, self._next_id + 1
        call = make(call_id)
        self._calls[call_id] = (call, purpose, refusals)
        return call

    def take(self, call_id: int) -> tuple[Call, Purpose, int]:
        """Forget an answered call: the call, why it was made, and refusals before it."""
        try:
            return self._calls.pop(call_id)
        except KeyError:
            raise LocalProtocolError(f"call {call_id} is not outstanding") from None

    def pending(self, purpose: Purpose, job_id: str | None = None) -> bool:
        """True while a call for ``purpose`` (and ``job_id``) is outstanding."""
        return any(
            p is purpose and getattr(call, "job_id", None) == job_id
            for call, p, _ in self._calls.values()
        )

    def __len__(self) -> int:
        return len(self._calls)
