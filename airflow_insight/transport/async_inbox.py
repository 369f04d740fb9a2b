"""The asyncio driver's inbox: frames from the reader task, answers from REST calls, bounded.

What counts against the room, what waits and what never does is decided in
:mod:`airflow_insight.protocol.inbox`; this class only moves items. Two lanes: *frames* (the
socket's frames in arrival order, with the events of frames the reader answered and the note that
the socket closed) and *urgent* items (finished REST calls, what ``follow``/``unfollow`` got
from the core), which the loop takes first.
One consumer (the driver's loop task); any number of producers, all on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Generic, TypeVar

from airflow_insight.protocol.inbox import InboxRoom

__all__ = ["AsyncInbox"]

_T = TypeVar("_T")

#: How often a reader waiting for room checks that its socket is still the one in use.
RECHECK_SECONDS = 0.1


class AsyncInbox(Generic[_T]):
    """Two lanes of items for one consumer; see the module docstring."""

    def __init__(self, limit_chars: int) -> None:
        self.room = InboxRoom(limit_chars)
        self._frames: collections.deque[tuple[_T, int]] = collections.deque()
        self._urgent: collections.deque[_T] = collections.deque()
        self._arrived = asyncio.Event()
        self._freed = asyncio.Event()

    def put_urgent(self, item: _T) -> None:
        """Queue ``item`` ahead of every frame."""
        self._urgent.append(item)
        self._arrived.set()

    def put_frame(self, item: _T, chars: int = 0) -> None:
        """Queue ``item`` after the frames before it (``chars`` 0: it never waits for room)."""
        self._frames.append((item, chars))
        self.room.take(chars)
        self._arrived.set()

    async def room_for(self, chars: int, wanted: Callable[[], bool]) -> None:
        """Return once a frame of ``chars`` characters fits, or ``wanted()`` turns false."""
        while not self.room.fits(chars) and wanted():
            self._freed.clear()
            try:
                async with asyncio.timeout(RECHECK_SECONDS):
                    await self._freed.wait()
            except TimeoutError:
                pass

    async def get(self, timeout: float) -> _T | None:
        """The next item (urgent ones first), waiting up to ``timeout`` seconds; None if none."""
        if not self._urgent and not self._frames:
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            except TimeoutError:
                return None
        if self._urgent:
            return self._urgent.popleft()
        item, chars = self._frames.popleft()
        self.room.release(chars)
        self._freed.set()
        return item
