"""What the two WebSocket drivers share that does no I/O of its own: the sink types, the wait
rule and which REST function performs which call of the core.

:mod:`.sync_driver` and :mod:`.async_driver` mirror each other method for method; the parts of
them that are not I/O live here once, so the twins cannot drift.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from airflow_insight.exceptions import LocalProtocolError
from airflow_insight.protocol import events as ev
from airflow_insight.transport.rest import InsightRestClient

#: Receives each batch of run-log lines to forward, in order, each line exactly once.
LineSink = Callable[[ev.RunLogLines], None]
#: Every event the core emits, for the adapter to log (the drivers never log them).
DriverEvent = ev.Event
EventSink = Callable[[DriverEvent], None]

#: The calls performed over REST (``ReconnectDue`` is the socket's).
RestCall = ev.TokenRefreshDue | ev.ReconcileDue | ev.RunLogFetchDue

#: Longest single wait when the core has nothing scheduled (it always has while following).
MAX_WAIT_SECONDS = 30.0


def receive_timeout(now: float, *deadlines: float | None, floor_seconds: float = 0.0) -> float:
    """Seconds to wait for the next frame: until the earliest deadline given (None: none), at
    least ``floor_seconds`` and at most :data:`MAX_WAIT_SECONDS`."""
    known = [deadline for deadline in deadlines if deadline is not None]
    wait = min(known) - now if known else MAX_WAIT_SECONDS
    return min(MAX_WAIT_SECONDS, max(floor_seconds, wait))


def rest_call(rest: InsightRestClient, call: RestCall) -> Callable[[], Any]:
    """The blocking REST function that performs ``call`` (not ``ReconnectDue``: a socket)."""
    match call:
        case ev.TokenRefreshDue():
            return rest.refresh_token if call.fresh else rest.current_token
        case ev.ReconcileDue():
            return functools.partial(rest.get_job, call.job_id)
        case ev.RunLogFetchDue():
            return functools.partial(rest.get_run_log, call.run_log_url, compute_job_id=call.job_id)
    raise LocalProtocolError(f"{type(call).__name__} is not a REST call")


def split_outputs(outputs: Iterable[ev.Output]) -> tuple[list[str], list[ev.Event]]:
    """The core's one channel, parted: the frames to send now and the events, each in order."""
    texts: list[str] = []
    events: list[ev.Event] = []
    for output in outputs:
        if isinstance(output, ev.SendText):
            texts.append(output.text)
        else:
            events.append(output)
    return texts, events


def not_followed(job_id: str) -> LocalProtocolError:
    """The error of ``wait()`` for a job the driver does not follow (both drivers)."""
    return LocalProtocolError(f"compute job {job_id!r} is not followed by this driver")
