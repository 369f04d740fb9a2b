"""Wait, before a trigger fires, until the triggerer has read what the trigger logged.

Why: in a triggerer (Airflow 3.3) a trigger's log records travel from the trigger runner
subprocess to its supervisor over one socket, and the news that the trigger ended over another.
The supervisor reads the log socket 4 KiB per turn of its loop, and on the news it closes the
trigger's log stream (``TriggerRunnerSupervisor._handle_request`` pops ``logger_cache``); records
it reads after that go to the triggerer's own log instead of the task's. When the supervisor
falls behind (a loaded machine, a slow metadata DB), the last run-log lines of a job, forwarded
just before the trigger fired, are missing from the task's log: seen once in the distributed
test bed (6 lines of one job of 50), and reproduced there by pausing the supervisor.

The one view a trigger has of that socket is how many bytes it holds that the supervisor has not
read yet (``SIOCOUTQ``, spelled ``TIOCOUTQ`` in :mod:`termios`; Linux). The socket is FIFO, so
what this trigger logged has been read once the supervisor has read as much as was queued when
the wait began. Other triggers keep writing meanwhile, so reads are not observed directly: a drop
of the queue between two looks is a lower bound of what was read in between, and their sum is
compared with what was queued. Where the view is missing (not Linux, a log that is not a local
stream socket, a logging setup without the stream) the trigger fires at once, without waiting. The
looks back off from 5 ms to 100 ms: many triggers end at once on a busy triggerer, and each look
wakes the loop the supervisor competes with for CPU. A trigger that reaches the limit says so in
its event, and the task logs it (the trigger's own warning would go the way of its last lines).
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import time

from airflow_insight.compat.runner import log_stream_fd as log_stream_fd

try:  # POSIX only; elsewhere nothing can be known and the trigger fires at once.
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not on the platforms Airflow runs on
    fcntl = termios = None  # type: ignore[assignment]

#: How long a trigger waits at most before it fires anyway (and says so). A supervisor that is
#: this far behind is also late to record the event; a longer wait would only delay the task.
DELIVERY_LIMIT_SECONDS = 15.0
#: The first pause between two looks at the queue, and the longest (it doubles in between).
FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.1


@dataclasses.dataclass
class DeliveryWatch:
    """Tell from successive looks at a FIFO's unread bytes when the first ``ahead`` were read."""

    ahead: int
    last: int
    read_at_least: int = 0

    @classmethod
    def starting_at(cls, unread: int) -> DeliveryWatch:
        """Watch the bytes unread now (this trigger's records are the last of them)."""
        return cls(ahead=unread, last=unread)

    def observe(self, unread: int) -> bool:
        """Record one look; True once everything that was queued at the start has been read."""
        # Between two looks writes add and reads remove, so a drop is at most what was read.
        self.read_at_least += max(0, self.last - unread)
        self.last = unread
        return unread == 0 or self.read_at_least >= self.ahead


def unread_bytes(fd: int) -> int | None:
    """Bytes written to the socket ``fd`` that its reader has not read yet; None if unknown."""
    if fcntl is None:
        return None
    try:
        answer = fcntl.ioctl(fd, termios.TIOCOUTQ, struct.pack("i", 0))
    except (AttributeError, OSError):  # no TIOCOUTQ here, or not a socket
        return None
    return int(struct.unpack("i", answer)[0])


async def wait_until_read(fd: int | None, limit: float = DELIVERY_LIMIT_SECONDS) -> bool | None:
    """Wait until what was written to ``fd`` so far has been read, at most ``limit`` seconds.

    True when it was read, False at the limit, None when this cannot be known here."""
    unread = None if fd is None else unread_bytes(fd)
    if fd is None or unread is None:
        return None
    watch = DeliveryWatch.starting_at(unread)
    deadline = time.monotonic() + limit
    pause = FIRST_POLL_SECONDS
    while not watch.observe(unread):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_POLL_SECONDS)
        unread = unread_bytes(fd)
        if unread is None:
            return None
    return True
