"""Run-log watermarks and one writer's table of them: records, leases, when to write. Pure.

A :class:`Watermark` says how far one trigger forwarded its job's run log. A
:class:`WatermarkTable` holds the watermarks of every job one triggerer follows, keyed by task
instance, and says when its stored text is due (a change at most once per
:data:`FLUSH_INTERVAL_SECONDS`, a heartbeat every :data:`HEARTBEAT_SECONDS`). A trigger stopped
without ending *releases* its entry: a lease the next triggerer may resume from, dropped after
:data:`STALE_SECONDS`.

Every time here is passed in and is wall-clock seconds (``time.time()``): the stored text
outlives the process that wrote it, and its readers compare its times with their own clocks.
See ``docs/design.md#the-watermark-store``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Protocol, TypeGuard

#: A changed table is written at most this often.
FLUSH_INTERVAL_SECONDS = 1.0
#: An unchanged, non-empty table is rewritten this often (its ``written_at`` proves it alive).
HEARTBEAT_SECONDS = 60.0
#: A table not written for this long is a dead triggerer's; a released entry is dropped then.
STALE_SECONDS = 600.0


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, slots=True)
class Watermark:
    """How far one trigger forwarded the run log of its job."""

    compute_job_id: str
    execution_attempts: int
    last_run_log_line: int
    #: The task try that wrote it (0 when unknown).
    try_number: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-safe fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """Read stored fields; None for anything that is not a watermark (never raises)."""
        if not isinstance(value, Mapping):
            return None
        job_id = value.get("compute_job_id")
        attempts, line = value.get("execution_attempts"), value.get("last_run_log_line")
        try_number = value.get("try_number", 0)
        if not (isinstance(job_id, str) and _is_int(attempts) and _is_int(line)):
            return None
        if not _is_int(try_number):
            return None
        return cls(job_id, attempts, line, try_number)

    def is_after(self, execution_attempts: int, last_run_log_line: int) -> bool:
        """True when this watermark is further on than ``(execution_attempts, line)``."""
        return (self.execution_attempts, self.last_run_log_line) > (
            execution_attempts,
            last_run_log_line,
        )


class TaskInstanceKey(Protocol):
    """What names a task instance (``compat.supervisor.TaskInstanceRef`` has it)."""

    @property
    def dag_id(self) -> str:
        """The DAG's id."""

    @property
    def run_id(self) -> str:
        """The DAG run's id."""

    @property
    def task_id(self) -> str:
        """The task's id."""

    @property
    def map_index(self) -> int:
        """The map index (-1: not mapped)."""

    @property
    def try_number(self) -> int:
        """The try the trigger serves."""


def ti_key(ref: TaskInstanceKey) -> str:
    """The table key of a task instance (without its try: the entry records that)."""
    return f"{ref.dag_id}/{ref.run_id}/{ref.task_id}/{ref.map_index}"


@dataclasses.dataclass(slots=True)
class _Entry:
    watermark: Watermark
    #: When its trigger stopped without ending (None: still followed here).
    released_at: float | None = None


class WatermarkTable:
    """One writer's watermarks and when to write them; pure (every time is passed in)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._changed = False
        self._written_at = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, ref: TaskInstanceKey, watermark: Watermark) -> None:
        """Record a job's newest watermark (cheap: called after every forwarded batch)."""
        key = ti_key(ref)
        entry = self._entries.get(key)
        if entry is not None and entry.watermark == watermark and entry.released_at is None:
            return
        self._entries[key] = _Entry(watermark)
        self._changed = True

    def release(self, ref: TaskInstanceKey, now: float) -> None:
        """The trigger stopped without ending: keep its entry for the next triggerer, a while."""
        self.release_key(ti_key(ref), now)

    def release_key(self, key: str, now: float) -> None:
        """:meth:`release` by table key."""
        entry = self._entries.get(key)
        if entry is not None and entry.released_at is None:
            entry.released_at = now
            self._changed = True

    def keys(self) -> list[str]:
        """The task instance keys in the table."""
        return list(self._entries)

    def watermarks(self) -> dict[str, Watermark]:
        """Every entry's watermark, by task instance key."""
        return {key: entry.watermark for key, entry in self._entries.items()}

    def forget(self, ref: TaskInstanceKey) -> None:
        """The trigger ended: its entry leaves the table at the next write."""
        if self._entries.pop(ti_key(ref), None) is not None:
            self._changed = True

    def due(self, now: float) -> bool:
        """Whether to write now (a change after the interval, or the heartbeat)."""
        self._drop_released(now)
        elapsed = now - self._written_at
        if self._changed:
            return elapsed >= FLUSH_INTERVAL_SECONDS
        return bool(self._entries) and elapsed >= HEARTBEAT_SECONDS

    def written(self, now: float) -> None:
        """A write of the table started at ``now``: the next periodic one is due after it."""
        self._written_at = now

    def to_text(self, now: float) -> str:
        """The stored text, stamped ``now``; clears the change flag (a failed write calls
        :meth:`failed`)."""
        self._changed = False
        jobs = {key: entry.watermark.to_json() for key, entry in self._entries.items()}
        return json.dumps({"written_at": now, "jobs": jobs}, separators=(",", ":"))

    def failed(self) -> None:
        """The last write failed: write again at the next chance."""
        self._changed = True

    def _drop_released(self, now: float) -> None:
        stale = [
            key
            for key, entry in self._entries.items()
            if entry.released_at is not None and now - entry.released_at > STALE_SECONDS
        ]
        for key in stale:
            del self._entries[key]
            self._changed = True


def read_table(text: str | None) -> tuple[float, dict[str, Watermark]]:
    """``(written_at, {task instance key: watermark})`` of a stored table; empty if unreadable."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return float("-inf"), {}
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), Mapping):
        return float("-inf"), {}
    written_at = data.get("written_at")
    marks = {
        str(key): mark
        for key, value in data["jobs"].items()
        if (mark := Watermark.from_json(value)) is not None
    }
    return float(written_at) if isinstance(written_at, int | float) else float("-inf"), marks
