"""How much received text a driver may hold for the core, and what never waits for that room.

A driver reads the socket on its own (a reader thread or task) so that ping frames are answered
while the loop forwards lines; what it read waits in an *inbox* until the loop feeds it to the
core. A server that writes run-log lines faster than the task log takes them would grow that
inbox without end (hours of a deferred flood in one triggerer). The decision, shared by both
drivers:

* Run-log and other ordinary frames count against :data:`INBOX_LIMIT_CHARS`. When a frame does
  not fit, the reader *waits* for room (it never drops a frame: a dropped line is a lost line).
  While it waits it reads nothing more, so TCP slows the server down and memory stays bounded.
  A frame larger than the whole limit still enters an empty inbox (the socket library caps a
  frame's size): otherwise it could never enter.
* Frames that need an immediate reply (:func:`~.replies.needs_immediate_reply`) never wait:
  the reader hands them to the core at once; their events then keep their place among the
  frames without counting against the room, as does the note that the socket closed.
* Answers of REST calls (and wake-ups after ``follow``/``unfollow``) never queue behind frames:
  the loop takes them first. Their order relative to frames does not matter to the core: an
  answer reflects the server later than any frame that arrived before it, which is what a frame
  still in flight on the network looks like too.

The room is released as soon as the loop takes a frame, so a reader waits one frame's forwarding
at a time. What the reader has not read yet waits in the network buffers: a ping or a callback
that the server wrote *after* a backlog the reader is waiting on is read (and answered at once)
only when the sink has taken the frames before it. Dropping frames instead would lose lines; the
4 MiB of room is what keeps that case to sinks far slower than a task log (docs/design.md).
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
