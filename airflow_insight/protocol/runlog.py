"""Run-log bookkeeping for one job: forward every line exactly once, in order (§A6, §B9 #11/#12).

Numbering. Lines are 0-based positions in the job's *whole* run log, the text ``runLogUrl``
returns; ``startLine`` and the end line are inclusive. The end line (``endLines``/``endLine``) is
only a hint: the batch covers ``startLine .. startLine + len(lines) - 1`` whatever it says.

Requeues. The reference says a requeued job keeps its earlier attempt's log, and does not say how
the next attempt numbers its lines. This class assumes numbering *continues* (the whole log is one
text and a position names one line in it), so "dedupe by attempt and line" reduces to "dedupe by
position". To stay correct with a server that restarts at 0 for each attempt, the first batch after
a requeue that starts at line 0 while lines were already forwarded switches this job to
per-attempt numbering: the new attempt's line ``n`` becomes position ``offset + n``, where
``offset`` is one past the last forwarded line, and ``SUBSCRIBE`` reports the last line in the
server's per-attempt numbering. Any gap left open in the earlier attempt is given up at that point
(reported as :class:`~.events.RunLogGap`), because the server can no longer replay it.

A batch at line 0 after a requeue is ambiguous: the new attempt restarting its numbering, or a
late or duplicate batch of the *earlier* attempt (a replay, a resend). ``RUNLOG_UPDATED`` names
no attempt, so the text decides: the first lines forwarded in the current numbering are kept
(the *head*), and a batch at 0 whose lines equal them (as far as both reach) is taken as a
repeat of the earlier attempt: its lines are dropped as duplicates and the switch still waits
for the new attempt's first batch. The head is needed for the whole follow (a requeue can come
at any time) but only as deep as it discriminates: it is bounded by :data:`HEAD_LINES` and
:data:`HEAD_CHARS` (whole lines only), a few kB per job, because a triggerer holds one per
followed job. A requeued job prints the same banner and problem statistics again, so more lines
of that output would not tell a repeat from a restart any better; a batch shorter than the head
is compared on its own length whatever the bound. The cost of guessing wrong the other way (a
new attempt that prints exactly the same first lines and restarts at 0) is that its lines
arrive late: they are not forwarded live but from the final REST log, which holds both attempts
in one text. Forwarding the earlier attempt's lines a second time, shifted after the end, would
be worse: wrong lines in the task log, and every later position off. Without a kept head (a job
resumed from a known line) a batch at 0 is taken as a restart.

Gaps. A batch that starts past the next expected line is buffered until the gap is filled (by a
later batch, a replay after ``SUBSCRIBE``, or the final REST run log). Buffering is bounded by
``max_buffered_lines``; past it the gap is given up so live lines keep flowing.

The final REST log is the truth for every position it covers: buffered lines at those positions
are dropped in favour of the REST text. Buffered lines *beyond* the end of the REST text (a log
fetched while the server was still writing, or a truncated one) are forwarded after it rather
than lost, with a :class:`~.events.RunLogGap` for anything still missing before them. Lines
taken from the REST log are labelled with the current execution attempt (the text does not say
which attempt wrote them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from airflow_insight.protocol.events import RunLogEvent, RunLogGap, RunLogLines

DEFAULT_TAIL_LINES = 10
DEFAULT_MAX_BUFFERED_LINES = 10_000
#: Lines a watcher's consumer may leave waiting before it stops taking more (see
#: :class:`WatchCursor`): seconds of a task log's pace, about 3 MB with 100-character lines.
WATCH_BACKLOG_LINES = 20_000
#: ...and the watchers of one socket together (a triggerer follows thousands of jobs on one):
#: about 15 MB with 100-character lines.
SOCKET_BACKLOG_LINES = 100_000
#: At most this many first lines of the current numbering are kept to recognise a repeated
#: batch at 0 (see the module docstring)...
HEAD_LINES = 100
#: ...and at most this many characters of them in all: about 6 kB of memory per job with the
#: strings' own overhead, 30 MB for 5,000 followed jobs.
HEAD_CHARS = 4096


def split_run_log(text: str) -> list[str]:
    """Split a REST run log into lines: line ``i`` is index ``i``.

    Only ``\\n`` separates lines (a ``\\r`` before it is dropped). :meth:`str.splitlines` would
    also split on form feeds and Unicode separators that a solver may print inside a line, which
    would shift every later line number. A final newline does not start an extra empty line.
    """
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


class RunLog:
    """The forwarded part of one job's run log, plus the lines waiting for a gap to close."""

    # One per followed job (5,000 in one triggerer): no per-instance __dict__.
    __slots__ = (
        "_attempts",
        "_awaiting_first_batch_of_attempt",
        "_forwarded",
        "_head",
        "_lost",
        "_max_buffered",
        "_offset",
        "_pending",
        "_tail",
        "_tail_lines",
        "job_id",
    )

    def __init__(
        self,
        job_id: str,
        *,
        execution_attempts: int = 0,
        last_forwarded_line: int = -1,
        tail_lines: int = DEFAULT_TAIL_LINES,
        max_buffered_lines: int = DEFAULT_MAX_BUFFERED_LINES,
    ) -> None:
        self.job_id = job_id
        self._attempts = execution_attempts
        self._forwarded = max(-1, last_forwarded_line)
        # Buffered lines by position, with the attempt that was current when each arrived.
        self._pending: dict[int, tuple[int, str]] = {}
        # A list trimmed after each batch, not a deque(maxlen=...): a deque's first block is
        # ~760 bytes however short the tail, and a triggerer holds one RunLog per job.
        self._tail: list[str] = []
        self._tail_lines = max(0, tail_lines)
        self._max_buffered = max(1, max_buffered_lines)
        # Position of the server's line 0 for the current attempt (non-zero only when the server
        # restarts numbering per attempt, see the module docstring).
        self._offset = 0
        self._awaiting_first_batch_of_attempt = False
        # The first lines forwarded from position ``_offset`` on (see the module docstring).
        self._head: list[str] = []
        # True once some position was given up (a RunLogGap was reported).
        self._lost = False

    # ----------------------------------------------------------------------------- reading

    @property
    def execution_attempts(self) -> int:
        """The execution attempt the lines now arriving belong to (0 when not known yet)."""
        return self._attempts

    @property
    def last_forwarded_line(self) -> int:
        """Position of the last line forwarded without a gap before it; -1 when none."""
        return self._forwarded

    @property
    def last_server_line(self) -> int:
        """``lastRunLogLine`` for ``SUBSCRIBE``: the last forwarded line in the server's numbering.

        The last *contiguous* line is reported, not the highest one buffered, so the server's
        replay fills any gap (duplicates of buffered lines are dropped).
        """
        return self._forwarded - self._offset if self._forwarded >= self._offset else -1

    @property
    def buffered_line_count(self) -> int:
        """How many lines wait for a gap to close."""
        return len(self._pending)

    @property
    def lines_lost(self) -> bool:
        """True once some line was given up (reported as a :class:`~.events.RunLogGap`)."""
        return self._lost

    def covers(self, total_lines: int) -> bool:
        """True when exactly lines ``0 .. total_lines - 1`` were forwarded: none given up, none
        waiting in the buffer, none beyond, and one numbering throughout (a server that
        restarted numbering for a new attempt counts its lines differently: never covered)."""
        return (
            not self._pending
            and not self._lost
            and self._offset == 0
            and self._forwarded == total_lines - 1
        )

    @property
    def tail(self) -> tuple[str, ...]:
        """The last few forwarded lines, for failure messages."""
        return tuple(self._tail)

    # ----------------------------------------------------------------------------- feeding

    def new_attempt(self, execution_attempts: int) -> None:
        """Record that ``executionAttempts`` grew to ``execution_attempts`` (a requeue)."""
        if execution_attempts <= self._attempts:
            return
        self._attempts = execution_attempts
        self._awaiting_first_batch_of_attempt = True

    def accept(self, start_line: int, lines: Sequence[str]) -> list[RunLogEvent]:
        """Take a ``RUNLOG_UPDATED`` batch (server numbering); return what to forward now."""
        events: list[RunLogEvent] = []
        if not lines:
            return events
        if self._awaiting_first_batch_of_attempt and not self._repeats_head(start_line, lines):
            self._awaiting_first_batch_of_attempt = False
            if start_line == 0 and self._forwarded >= 0:
                # The server restarted numbering for the new attempt: map it after what we have.
                events.extend(self._give_up_gaps())
                self._offset = self._forwarded + 1
                self._head = []
        first = self._offset + start_line
        for index, line in enumerate(lines):
            position = first + index
            if position > self._forwarded:
                # The first copy of a line wins; a duplicate carries the same text anyway.
                self._pending.setdefault(position, (self._attempts, line))
        events.extend(self._drain())
        if len(self._pending) > self._max_buffered:
            events.extend(self._give_up_gaps())
        return events

    def fill_from_text(self, text: str) -> list[RunLogEvent]:
        """Take the final REST run log: forward every line after the last forwarded one.

        See the module docstring for what happens to buffered lines.
        """
        rest_lines = split_run_log(text)
        for position in [p for p in self._pending if p < len(rest_lines)]:
            del self._pending[position]
        events: list[RunLogEvent] = []
        start = self._forwarded + 1
        if start < len(rest_lines):
            events.append(self._forward(start, rest_lines[start:]))
        events.extend(self._give_up_gaps())
        return events

    def flush(self) -> list[RunLogEvent]:
        """Give up every gap: forward all buffered lines, reporting what is missing."""
        return self._give_up_gaps()

    # ----------------------------------------------------------------------------- internals

    def _repeats_head(self, start_line: int, lines: Sequence[str]) -> bool:
        """True for a batch at 0 that repeats the kept first lines (an earlier attempt's)."""
        overlap = min(len(lines), len(self._head))
        return start_line == 0 and overlap > 0 and list(lines[:overlap]) == self._head[:overlap]

    def _forward(
        self, first: int, lines: Sequence[str], attempts: int | None = None
    ) -> RunLogLines:
        if len(self._head) < HEAD_LINES and first - self._offset == len(self._head):
            self._extend_head(lines)
        self._forwarded = first + len(lines) - 1
        if self._tail_lines:
            self._tail.extend(lines[-self._tail_lines :])
            del self._tail[: -self._tail_lines]
        attempts = self._attempts if attempts is None else attempts
        return RunLogLines(self.job_id, attempts, first, tuple(lines))

    def _extend_head(self, lines: Sequence[str]) -> None:
        """Keep the whole lines of ``lines`` that still fit in the head's bounds."""
        chars = sum(map(len, self._head))
        for line in lines[: HEAD_LINES - len(self._head)]:
            chars += len(line)
            if chars > HEAD_CHARS:
                return
            self._head.append(line)

    def _drain(self) -> list[RunLogEvent]:
        """Forward the buffered lines that now follow on without a gap, one event per attempt."""
        events: list[RunLogEvent] = []
        while self._forwarded + 1 in self._pending:
            attempts = self._pending[self._forwarded + 1][0]
            run: list[str] = []
            position = self._forwarded + 1
            while position in self._pending and self._pending[position][0] == attempts:
                run.append(self._pending.pop(position)[1])
                position += 1
            events.append(self._forward(self._forwarded + 1, run, attempts))
        if events and not self._pending:
            self._pending = {}  # An emptied dict keeps its table (kB per job): let it go.
        return events

    def _give_up_gaps(self) -> list[RunLogEvent]:
        """Forward everything buffered, with a gap event before each hole."""
        events: list[RunLogEvent] = []
        while self._pending:
            next_position = min(self._pending)
            if next_position > self._forwarded + 1:
                events.append(RunLogGap(self.job_id, self._forwarded + 1, next_position - 1))
                self._lost = True
                self._forwarded = next_position - 1
            events.extend(self._drain())
        return events


class WatchCursor:
    """One watcher's position in a job's forwarded stream, where several watch one job.

    The core forwards each line once per job; a watcher (a trigger) that joined late, or one
    that must stop at a gap, sees that stream from its own ``last_run_log_line``. A watcher never
    gets lines out of order: it keeps the last line it got *with no gap before it*, and once it
    would see a hole (it joined a stream that was further on, or the core gave lines up with a
    :class:`~.events.RunLogGap`) it takes nothing more, so that the task's resume reads the REST
    run log once more and forwards the rest exactly once, in order. Moving past a gap instead
    would lose its lines even when that later GET has them. The cost: after a gap the rest of
    that job's log appears at the resume, not live.

    A watcher whose consumer falls far behind (more than :data:`WATCH_BACKLOG_LINES` lines
    handed to it and not yet logged: a task log slower than the server's flood), or one with a
    backlog when all the watchers of its socket together hold more than
    :data:`SOCKET_BACKLOG_LINES`, stops the same way (:meth:`overflows`): the backlogs stay
    bounded without holding up the other jobs on the socket (a watcher that keeps up, with
    nothing waiting, is never stopped), and the lines are not lost but read at the resume.
    """

    __slots__ = ("behind", "last_run_log_line")  # One per watcher (per job in a triggerer).

    def __init__(self, last_run_log_line: int) -> None:
        #: The last run-log line handed to this watcher with no gap before it.
        self.last_run_log_line = last_run_log_line
        #: True once this watcher stopped taking lines (see the class docstring).
        self.behind = False

    def take(self, batch: RunLogLines) -> RunLogLines | None:
        """The part of ``batch`` this watcher forwards (None: nothing)."""
        skip = self.last_run_log_line + 1 - batch.first_line
        if self.behind or batch.last_line <= self.last_run_log_line:
            return None
        if skip < 0:
            # A stream further on than this watcher: forwarding it would leave a hole.
            self.behind = True
            return None
        self.last_run_log_line = batch.last_line
        if skip == 0:
            return batch
        return dataclasses.replace(
            batch, first_line=batch.first_line + skip, lines=batch.lines[skip:]
        )

    def overflows(
        self, batch: RunLogLines, waiting_lines: int, socket_waiting_lines: int = 0
    ) -> RunLogGap | None:
        """The gap to deliver (this watcher then stops) when taking ``batch`` on top of the
        ``waiting_lines`` its consumer has not taken yet (``socket_waiting_lines``: those of
        every watcher of the socket) would exceed a backlog bound. A watcher with nothing
        waiting takes any batch: it keeps up, and a batch larger than a bound could never be
        taken else."""
        if self.behind or not waiting_lines:
            return None
        size = len(batch.lines)
        if (
            waiting_lines + size <= WATCH_BACKLOG_LINES
            and socket_waiting_lines + size <= SOCKET_BACKLOG_LINES
        ):
            return None
        if batch.last_line <= self.last_run_log_line:
            return None  # Nothing new in it: take() drops it anyway.
        gap = RunLogGap(batch.job_id, self.last_run_log_line + 1, batch.last_line)
        self.behind = True
        return gap

    def stops_at(self, gap: RunLogGap) -> bool:
        """True when ``gap`` concerns this watcher: it stops here (deliver the gap once)."""
        if self.behind or gap.last_line <= self.last_run_log_line:
            return False  # Missing none of those lines, or stopped already.
        self.behind = True
        return True
