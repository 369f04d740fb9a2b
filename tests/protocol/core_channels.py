"""The core read as two channels, and the calls it asked for answered by kind, for core tests.

:class:`TwoChannels` is a :class:`Follower` whose inputs return only their events and collect
their :class:`~airflow_insight.protocol.events.SendText` frames for :meth:`data_to_send`, as a
driver would send them. It also keeps the calls the core asked for, so a test can answer "the
open socket call" or "the run-log fetch of job-1" the way a driver does: through
``call_succeeded``/``call_failed`` with the call's id (``answer``/``refuse``). Tests of the one
channel itself use a plain :class:`Follower`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from airflow_insight.exceptions import InsightError
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.follower import Follower

#: The core's inputs (each returns a list of outputs): all a driver ever calls.
INPUTS = (
    "start",
    "follow",
    "unfollow",
    "receive_text",
    "call_succeeded",
    "call_failed",
    "connection_lost",
    "tick",
)


class TwoChannels(Follower):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[str] = []
        #: The calls asked for and not answered yet, by id.
        self.asked: dict[int, ev.Event] = {}

    def data_to_send(self) -> list[str]:
        """Return and forget the frames the inputs returned, oldest first."""
        frames, self.frames = self.frames, []
        return frames

    def outstanding(self, kind: type[Any], job_id: str | None = None) -> Any:
        """The oldest unanswered call of ``kind`` (for ``job_id``); fails when there is none."""
        for call in self.asked.values():
            if isinstance(call, kind) and getattr(call, "job_id", None) == job_id:
                return call
        raise AssertionError(f"no {kind.__name__} outstanding for {job_id!r}: {self.asked}")

    def answer(
        self, kind: type[Any], result: Any, now: float, job_id: str | None = None
    ) -> list[ev.Event]:
        """Answer the outstanding call of ``kind`` with ``result``, as a driver does."""
        call = self.outstanding(kind, job_id)
        return self.call_succeeded(call.call_id, result, now)  # type: ignore[return-value]

    def refuse(
        self, kind: type[Any], error: InsightError, now: float, job_id: str | None = None
    ) -> list[ev.Event]:
        """Answer the outstanding call of ``kind`` with ``error``, as a driver does."""
        call = self.outstanding(kind, job_id)
        return self.call_failed(call.call_id, error, now)  # type: ignore[return-value]


def _events_only(method: Callable[..., list[ev.Output]]) -> Callable[..., list[ev.Event]]:
    @functools.wraps(method)
    def run(self: TwoChannels, *args: Any, **kwargs: Any) -> list[ev.Event]:
        if method.__name__ in ("call_succeeded", "call_failed"):
            self.asked.pop(args[0] if args else kwargs["call_id"], None)
        events: list[ev.Event] = []
        for output in method(self, *args, **kwargs):
            if isinstance(output, ev.SendText):
                self.frames.append(output.text)
            else:
                events.append(output)
                call_id = getattr(output, "call_id", None)
                if call_id is not None:
                    self.asked[call_id] = output
        return events

    return run


for _name in INPUTS:
    setattr(TwoChannels, _name, _events_only(getattr(Follower, _name)))
