"""The blocking driver's inbox: frames from the reader thread, items for the loop, bounded.

The twin of :mod:`.async_inbox`. What counts against the room, what waits and what never does is
decided in :mod:`airflow_insight.protocol.inbox`; this class only moves items. Two lanes:
*frames* (the socket's frames in arrival order, with the events of frames the reader answered
and the note that the socket closed), for which the reader thread waits for room, and *urgent*
items (what ``follow``/``unfollow`` got from the core, call answers), which the loop takes first.
The loop never waits for the reader.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from airflow_insight.protocol.inbox import InboxRoom
from airflow_insight.transport.driving import InboxItem

__all__ = ["SyncInbox"]

#: How often a reader waiting for room checks that its socket is still the one in use.
RECHECK_SECONDS = 0.1


class SyncInbox:
    """Two lanes of items for one consumer; see the module docstring."""

    def __init__(self, limit_chars: int) -> None:
        self.room = InboxRoom(limit_chars)
        self._frames: collections.deque[tuple[InboxItem, int]] = collections.deque()
        self._urgent: collections.deque[InboxItem] = collections.deque()
        self._changed = threading.Condition()

    def put_urgent(self, item: InboxItem) -> None:
        """Queue ``item`` ahead of every frame."""
        with self._changed:
            self._urgent.append(item)
            self._changed.notify_all()

    def put_frame(self, item: InboxItem, chars: int = 0, wanted: Callable[[], bool] = bool) -> None:
        """Queue ``item`` (``chars`` long) after the frames, first waiting for room while
        ``wanted()``."""
        with self._changed:
            while not self.room.fits(chars) and wanted():
                self._changed.wait(RECHECK_SECONDS)
            self._frames.append((item, chars))
            self.room.take(chars)
            self._changed.notify_all()

    def get(self, timeout: float) -> InboxItem | None:
        """The next item (urgent ones first), waiting up to ``timeout`` seconds; None if none."""
        with self._changed:
            if not self._urgent and not self._frames:
                self._changed.wait(timeout)
            if self._urgent:
                return self._urgent.popleft()
            if not self._frames:
                return None
            item, chars = self._frames.popleft()
            self.room.release(chars)
            self._changed.notify_all()
            return item
