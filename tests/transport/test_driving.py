"""The wait rule both WebSocket drivers share (no sockets, no clock)."""

from __future__ import annotations

import pytest

from airflow_insight.transport.driving import MAX_WAIT_SECONDS, receive_timeout


@pytest.mark.parametrize(
    ("deadlines", "floor", "expected"),
    [
        ((None,), 0.0, MAX_WAIT_SECONDS),  # nothing scheduled: the longest single wait
        ((102.5,), 0.0, 2.5),  # until the core's deadline
        ((105.0, 101.0), 0.0, 1.0),  # the earliest of the core's deadline and the caller's end
        ((None, 101.0), 0.0, 1.0),
        ((99.0,), 0.0, 0.0),  # overdue: do not wait
        ((99.0,), 0.001, 0.001),  # ... unless a floor is asked for (a zero recv timeout)
        ((1000.0,), 0.0, MAX_WAIT_SECONDS),  # far away: capped
    ],
)
def test_receive_timeout(
    deadlines: tuple[float | None, ...], floor: float, expected: float
) -> None:
    assert receive_timeout(100.0, *deadlines, floor_seconds=floor) == pytest.approx(expected)
