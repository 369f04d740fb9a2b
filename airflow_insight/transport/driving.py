"""What the two WebSocket drivers share that does no I/O: the line sink type and the wait rule.

:mod:`.sync_driver` and :mod:`.async_driver` mirror each other method for method; the parts of
them that are not I/O live here once, so the twins cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow_insight.protocol import events as ev

#: Receives each batch of run-log lines to forward, in order, each line exactly once.
LineSink = Callable[[ev.RunLogLines], None]

#: Longest single wait when the core has nothing scheduled (it always has while following).
MAX_WAIT_SECONDS = 30.0


def receive_timeout(now: float, *deadlines: float | None, floor_seconds: float = 0.0) -> float:
    """Seconds to wait for the next frame: until the earliest deadline given (None: none), at
    least ``floor_seconds`` and at most :data:`MAX_WAIT_SECONDS`."""
    known = [deadline for deadline in deadlines if deadline is not None]
    wait = min(known) - now if known else MAX_WAIT_SECONDS
    return min(MAX_WAIT_SECONDS, max(floor_seconds, wait))
