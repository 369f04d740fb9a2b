"""The core read as two channels, for tests written against events and sent frames apart.

:class:`TwoChannels` is a :class:`Follower` whose inputs return only their events and collect
their :class:`~airflow_insight.protocol.events.SendText` frames for :meth:`data_to_send`, as a
driver would send them. Tests of the one channel itself use a plain :class:`Follower`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from airflow_insight.protocol import events as ev
from airflow_insight.protocol.follower import Follower

#: The core's inputs (each returns a list of outputs).
INPUTS = (
    "start",
    "follow",
    "unfollow",
    "connection_opened",
    "connection_lost",
    "connection_failed",
    "token_refreshed",
    "call_succeeded",
    "call_failed",
    "tick",
    "receive_text",
    "job_document_received",
    "job_gone",
    "reconcile_failed",
    "run_log_fetched",
    "run_log_unavailable",
)


class TwoChannels(Follower):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[str] = []

    def data_to_send(self) -> list[str]:
        """Return and forget the frames the inputs returned, oldest first."""
        frames, self.frames = self.frames, []
        return frames


def _events_only(method: Callable[..., list[ev.Output]]) -> Callable[..., list[ev.Event]]:
    @functools.wraps(method)
    def run(self: TwoChannels, *args: Any, **kwargs: Any) -> list[ev.Event]:
        events: list[ev.Event] = []
        for output in method(self, *args, **kwargs):
            if isinstance(output, ev.SendText):
                self.frames.append(output.text)
            else:
                events.append(output)
        return events

    return run


for _name in INPUTS:
    setattr(TwoChannels, _name, _events_only(getattr(Follower, _name)))
