"""How much received text a driver may hold for the core, and what never waits for that room.

A driver reads the socket on its own (a reader thread or task) so that pings are answered while
the loop forwards lines; what it read waits in an *inbox* until the loop feeds it to the core.
The rule, shared by both drivers:

* Ordinary frames count against :data:`INBOX_LIMIT_CHARS`; a frame that does not fit makes the
  reader *wait* (never drop: a dropped frame is a lost line), so TCP slows the server down. A
  frame larger than the whole limit still enters an empty inbox.
* Frames that need an immediate reply (:func:`~.replies.needs_immediate_reply`) never wait: the
  reader hands them to the core at once; their events keep their place without counting.
* Call answers and what ``follow``/``unfollow`` got from the core never queue behind frames.

Why waiting and not dropping, and what it costs a ping behind a backlog:
``docs/design.md#bounded-inboxes``.
"""

from __future__ import annotations

__all__ = ["INBOX_LIMIT_CHARS", "MAX_MESSAGE_BYTES", "InboxRoom"]

#: Frame text an inbox may hold before its reader waits for room. A 1,000-line batch is about
#: 50,000 characters, so this is about 80 such batches: room enough that a fast sink never makes
#: the reader wait, small enough that 1,000 sockets' worth fits in a triggerer's memory.
INBOX_LIMIT_CHARS = 4 * 1024 * 1024
#: Largest WebSocket message a driver reads: a 1,000-line batch is about 50 kB, so 16 MiB is far
#: beyond any real one, and a larger frame is refused before its payload is read (the socket is
#: then lost and reopened; the server replays what was missed).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class InboxRoom:
    """The characters of frame text an inbox holds, against its limit; see the module docstring."""

    __slots__ = ("held", "limit", "peak")

    def __init__(self, limit_chars: int = INBOX_LIMIT_CHARS) -> None:
        self.limit = max(1, limit_chars)
        #: Characters now held.
        self.held = 0
        #: The most characters ever held at once (what a benchmark or test reads).
        self.peak = 0

    def fits(self, chars: int) -> bool:
        """True when a frame of ``chars`` characters may enter now (uncounted items always may)."""
        return not chars or not self.held or self.held + chars <= self.limit

    def take(self, chars: int) -> None:
        """Count a frame of ``chars`` characters that entered."""
        self.held += chars
        self.peak = max(self.peak, self.held)

    def release(self, chars: int) -> None:
        """Uncount a frame the loop took."""
        self.held -= chars
