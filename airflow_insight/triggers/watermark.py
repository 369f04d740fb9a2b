"""The trigger's forwarding watermark, persisted so a new triggerer resumes where the last stopped.

Airflow rebuilds a moved or restarted trigger from the kwargs it had when the task deferred and
gives it no way to update them; what a trigger *can* write through its supervisor is its task
instance's XComs and Variables.

Decision: **one Variable per triggerer event loop** (key :data:`VARIABLE_PREFIX` + a writer id
unique to the process), holding the watermarks of every job that loop follows (JSON, see
:meth:`WatermarkTable.to_text`: task instance, job id, execution attempt, last line forwarded,
try number; no secret). Measured (``benchmarks/watermark_persist.py``): one ``SetXCom`` costs
the triggerer's supervisor about as much CPU as one ``PutVariable`` of 1,000 watermarks (~11 ms
on SQLite here), so per-task-instance XComs (one message each) would cost a whole core at 1,000
jobs persisted once a second, one batched Variable about 1 % of one. What the XCom would have
given for free (cleanup with the task instance) is done by hand:

* a live writer rewrites its Variable at most once per :data:`FLUSH_INTERVAL_SECONDS` when a
  watermark changed (and every :data:`HEARTBEAT_SECONDS` anyway, so its ``written_at`` shows it
  is alive); a job that ends leaves the table at the next write, and the writer deletes its
  Variable when its table is empty;
* a trigger stopped without ending (a triggerer shutdown, a move) keeps its entry, marked
  released, for :data:`STALE_SECONDS`, so the next triggerer can resume from it;
* a Variable not written for :data:`STALE_SECONDS` belongs to a dead (or stopped) triggerer
  whose jobs have long moved: any reader deletes it, and so does every writer whose table
  empties. (So a stopped triggerer's Variable outlives it by that long at most, as long as some
  trigger still runs somewhere.)

Resuming: :class:`WatermarkReader` lists the Variables with the prefix (``GetVariableKeys``), reads
them (one read shared by the triggers that start while it runs, so 1,000 triggers taken over at
once do not read 1,000 times; never a read older than the trigger) and takes, for the trigger's
task instance, try and job, the furthest watermark any writer stored: everything up to it was
forwarded by someone.

Bounds: after a crash, lines forwarded since the last write the supervisor stored repeat: one
flush interval's worth plus the supervisor's answer time (periodic writes are not held back by a
slow answer: up to :data:`MAX_WRITES_IN_FLIGHT` are sent, and answered in order, so the newest
wins). On a clean stop nothing repeats: ``cleanup()`` comes too late to write (Airflow has
stopped reading the supervisor's answers by then, see :mod:`.shutdown`), so the writer acts on
the trigger runner's stop signal itself: the triggers stop forwarding, the table is written once
and confirmed, and only then does Airflow's runner stop.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, TypeGuard

from airflow_insight.compat import supervisor
from airflow_insight.compat.supervisor import SupervisorUnavailable, TaskInstanceRef
from airflow_insight.triggers.shutdown import ShutdownGuard

log = logging.getLogger(__name__)

#: Variable keys of watermark tables (no "token"/"secret" in it: Airflow masks such names).
VARIABLE_PREFIX = "insight_run_log_watermarks."
_DESCRIPTION = (
    "airflow-insight: how far deferred Insight jobs' run logs were forwarded (kept by a"
    " triggerer; deleted when its jobs end)"
)
#: A changed table is written at most this often.
FLUSH_INTERVAL_SECONDS = 1.0
#: An unchanged, non-empty table is rewritten this often (its ``written_at`` proves it alive).
HEARTBEAT_SECONDS = 60.0
#: A table not written for this long is a dead triggerer's; a released entry is dropped then.
STALE_SECONDS = 600.0
#: Tables read for resuming are reused this long by the other triggers of the loop.
READ_CACHE_SECONDS = 5.0
#: Triggers stopping within this window share one final write.
FINAL_FLUSH_DELAY_SECONDS = 0.05
#: Periodic writes sent and not yet answered, at most (a slow one does not hold back the next).
MAX_WRITES_IN_FLIGHT = 3
#: How long a resuming trigger waits for the stored tables. A supervisor's first answer can take
#: seconds (it builds its in-process execution API on the first request: 7.5 s measured on a
#: loaded 2-core machine); waiting loses nothing (the server keeps the run log), but it must stay
#: well below the server's 60 s answer limit for a paused solve (see the trigger's docstring).
RESUME_READ_TIMEOUT_SECONDS = 30.0
#: On the trigger runner's stop signal: how long the final write may hold back Airflow's stop
#: (its supervisor escalates to SIGTERM 10 s after its SIGINT).
STOP_WRITE_BUDGET_SECONDS = 5.0


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


def ti_key(ref: TaskInstanceRef) -> str:
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

    def update(self, ref: TaskInstanceRef, watermark: Watermark) -> None:
        """Record a job's newest watermark (cheap: called after every forwarded batch)."""
        key = ti_key(ref)
        entry = self._entries.get(key)
        if entry is not None and entry.watermark == watermark and entry.released_at is None:
            return
        self._entries[key] = _Entry(watermark)
        self._changed = True

    def release(self, ref: TaskInstanceRef, now: float) -> None:
        """The trigger stopped without ending: keep its entry for the next triggerer, a while."""
        self.release_key(ti_key(ref), now)

    def keys(self) -> list[str]:
        """The task instance keys in the table."""
        return list(self._entries)

    def watermarks(self) -> dict[str, Watermark]:
        """Every entry's watermark, by task instance key."""
        return {key: entry.watermark for key, entry in self._entries.items()}

    def release_key(self, key: str, now: float) -> None:
        """:meth:`release` by table key."""
        entry = self._entries.get(key)
        if entry is not None and entry.released_at is None:
            entry.released_at = now
            self._changed = True

    def forget(self, ref: TaskInstanceRef) -> None:
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
        """The text taken by :meth:`to_text` at ``now`` was stored."""
        self._written_at = now

    def to_text(self, now: float) -> str:
        """The Variable's text; clears the change flag (a failed write calls :meth:`failed`)."""
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


_Tables = dict[str, tuple[float, dict[str, Watermark]]]

_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WatermarkWriter] = (
    weakref.WeakKeyDictionary()
)


class WatermarkWriter:
    """Writes the watermark table of one event loop (one triggerer) into its Variable."""

    def __init__(self, writer_id: str | None = None) -> None:
        self.writer_id = writer_id or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.key = f"{VARIABLE_PREFIX}{self.writer_id}"
        self.table = WatermarkTable()
        self.reader = WatermarkReader(own_key=self.key)
        self._task: asyncio.Task[None] | None = None
        self._final: asyncio.Future[bool] | None = None
        self._stored_anything = False
        self._in_flight: set[asyncio.Task[bool]] = set()
        self.guard = ShutdownGuard(self._store_final, STOP_WRITE_BUDGET_SECONDS)
        #: What the stop write stored, per task instance key (see :meth:`_store_final`).
        self._stored_at_stop: dict[str, Watermark] = {}
        #: Writes stored and failed (read by the benchmark and the tests).
        self.writes = 0
        self.failures = 0

    @classmethod
    def for_running_loop(cls) -> WatermarkWriter:
        """The writer of the running loop (the triggerer runs every trigger on one loop)."""
        loop = asyncio.get_running_loop()
        writer = _WRITERS.get(loop)
        if writer is None:
            writer = _WRITERS[loop] = cls()
        return writer

    @property
    def stopping(self) -> bool:
        """The trigger runner got its stop signal: forward nothing more (see :mod:`.shutdown`)."""
        return self.guard.stopping

    def watch_shutdown(self) -> None:
        """Store the final watermarks on the trigger runner's stop signal, before it acts."""
        self.guard.install()

    async def _store_final(self) -> None:
        """The stop signal came: every trigger stopped forwarding; store the table once."""
        now = time.monotonic()
        for key in list(self.table.keys()):
            self.table.release_key(key, now)
        marks = self.table.watermarks()
        if not marks:
            return
        if await self._write(now, STOP_WRITE_BUDGET_SECONDS):
            self._stored_at_stop = marks
            log.info(
                "The triggerer is stopping: stored where forwarding stopped for %d job(s)",
                len(marks),
            )

    def update(self, ref: TaskInstanceRef, watermark: Watermark) -> None:
        """Note a job's newest watermark; it is written within :data:`FLUSH_INTERVAL_SECONDS`."""
        self.table.update(ref, watermark)
        self._ensure_running()

    def forget(self, ref: TaskInstanceRef) -> None:
        """The trigger ended: drop its entry (and the Variable, once the table is empty)."""
        self.table.forget(ref)
        self._ensure_running()

    async def persist_now(self, ref: TaskInstanceRef, watermark: Watermark, timeout: float) -> bool:
        """A clean stop: keep the entry for the next triggerer and write it at once.

        Triggers stopping together (a triggerer shutdown stops them all) share one write.
        True when the supervisor confirmed it (or the write on the stop signal stored it).
        """
        if self._stored_at_stop.get(ti_key(ref)) == watermark:
            return True
        self.table.update(ref, watermark)
        self.table.release(ref, time.monotonic())
        if self._final is None or self._final.done():
            self._final = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(
                FINAL_FLUSH_DELAY_SECONDS, self._spawn_final, self._final, timeout
            )
        return await asyncio.shield(self._final)

    def _spawn_final(self, future: asyncio.Future[bool], timeout: float) -> None:
        async def final() -> None:
            stored = await self._write(time.monotonic(), timeout)
            if not future.done():
                future.set_result(stored)

        asyncio.get_running_loop().create_task(final(), context=contextvars.Context())

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            # A context of its own: the writer's log lines belong to no one trigger's task log.
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS / 4)
            if self.stopping:
                return  # The stop write takes over; nothing is forwarded any more.
            now = time.monotonic()
            if self.table.due(now):
                if not len(self.table):
                    await self._write(now, supervisor.ASK_TIMEOUT_SECONDS)
                elif len(self._in_flight) < MAX_WRITES_IN_FLIGHT:
                    # Not awaited: the supervisor answers in order, so the newest write wins,
                    # and one slow answer does not make the stored state lag behind.
                    task = asyncio.get_running_loop().create_task(
                        self._write(now, supervisor.ASK_TIMEOUT_SECONDS)
                    )
                    self._in_flight.add(task)
                    task.add_done_callback(self._write_done)
            elif not len(self.table):
                if self._stored_anything:
                    await self._delete()
                await self.reader.collect_stale()
                return

    def _write_done(self, task: asyncio.Task[bool]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled():
            task.exception()  # _write catches what it expects; anything else is a bug: shown.

    async def _write(self, now: float, timeout: float) -> bool:
        if not len(self.table):
            self.table.to_text(now)  # Nothing left: the Variable goes instead.
            await self._delete()
            return True
        text = self.table.to_text(time.time())
        self.table.written(now)  # Started: the next periodic write is due an interval later.
        try:
            await supervisor.put_variable(self.key, text, _DESCRIPTION, timeout)
        except SupervisorUnavailable as exc:
            self.failures += 1
            self.table.failed()
            log.warning(
                "Could not store the run-log watermarks in Variable %s (a triggerer restart"
                " would repeat lines forwarded since the last write): %s",
                self.key,
                exc,
            )
            return False
        self.writes += 1
        self._stored_anything = True
        return True

    async def _delete(self) -> None:
        try:
            await supervisor.delete_variable(self.key)
            self._stored_anything = False
        except SupervisorUnavailable as exc:
            log.warning("Could not delete Variable %s: %s", self.key, exc)


class WatermarkReader:
    """Finds the furthest stored watermark of a task instance across every writer's table.

    A read is shared by every caller that asks while it runs or soon after, but never by a
    caller that needs data newer than the read: ``not_before`` (a trigger passes the time it was
    built) makes sure a trigger rebuilt after a clean stop sees the final write of the stop.
    """

    def __init__(self, own_key: str | None = None) -> None:
        self.own_key = own_key
        #: The last read: when it started, and what it found.
        self._cache: tuple[float, dict[str, tuple[float, dict[str, Watermark]]]] | None = None
        self._loading: tuple[float, asyncio.Task[_Tables]] | None = None

    async def find(
        self,
        ref: TaskInstanceRef,
        compute_job_id: str,
        not_before: float = float("inf"),
        timeout: float = RESUME_READ_TIMEOUT_SECONDS,
    ) -> Watermark | None:
        """The furthest watermark stored for ``ref``'s try and ``compute_job_id`` (or None)."""
        tables = await self._tables(not_before, timeout)
        key = ti_key(ref)
        found: Watermark | None = None
        for _, marks in tables.values():
            mark = marks.get(key)
            if mark is None or mark.compute_job_id != compute_job_id:
                continue
            if mark.try_number not in (0, ref.try_number):
                continue
            if found is None or mark.is_after(found.execution_attempts, found.last_run_log_line):
                found = mark
        return found

    async def latest_for(self, ref: TaskInstanceRef) -> Watermark | None:
        """The entry of ``ref`` written by the latest try (any job), for the kill decision."""
        tables = await self._tables(float("inf"), supervisor.ASK_TIMEOUT_SECONDS)
        marks = [found for _, table in tables.values() if (found := table.get(ti_key(ref)))]
        return max(marks, key=lambda mark: mark.try_number, default=None)

    async def collect_stale(self) -> None:
        """Delete the tables of dead triggerers (not written for :data:`STALE_SECONDS`)."""
        try:
            await self._tables(float("inf"), supervisor.ASK_TIMEOUT_SECONDS)
        except SupervisorUnavailable as exc:
            log.debug("Could not look for stale watermark tables: %s", exc)

    async def _tables(self, not_before: float, timeout: float) -> _Tables:
        """Tables from a read that started at ``not_before`` or later (inf: a fresh read).

        The read itself may take :data:`RESUME_READ_TIMEOUT_SECONDS` (it is shared); this caller
        waits ``timeout`` for it at most.
        """
        now = time.monotonic()
        not_before = min(not_before, now)
        cache = self._cache
        if cache is not None and cache[0] >= not_before and now - cache[0] < READ_CACHE_SECONDS:
            return cache[1]
        loading = self._loading
        if loading is None or loading[1].done() or loading[0] < not_before:
            task = asyncio.get_running_loop().create_task(
                self._load(), context=contextvars.Context()
            )
            loading = self._loading = (now, task)
        try:
            async with asyncio.timeout(timeout):
                tables = await asyncio.shield(loading[1])
        except TimeoutError:
            raise SupervisorUnavailable(f"no answer within {timeout:g} s") from None
        if self._cache is None or self._cache[0] < loading[0]:
            self._cache = (loading[0], tables)
        return tables

    async def _load(self) -> _Tables:
        tables: _Tables = {}
        timeout = RESUME_READ_TIMEOUT_SECONDS
        for key in await supervisor.variable_keys(VARIABLE_PREFIX, timeout):
            written_at, marks = read_table(await supervisor.get_variable(key, timeout))
            if key != self.own_key and time.time() - written_at > STALE_SECONDS:
                await self._delete_stale(key)
                continue
            tables[key] = (written_at, marks)
        return tables

    async def _delete_stale(self, key: str) -> None:
        log.info("Deleting Variable %s: its triggerer has not written it for long", key)
        try:
            await supervisor.delete_variable(key)
        except SupervisorUnavailable as exc:
            log.warning("Could not delete Variable %s: %s", key, exc)
