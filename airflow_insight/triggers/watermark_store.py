"""The watermark store's logic: one writer per triggerer, readers that resume, garbage collection.

Plain asyncio over a small :class:`TableStore` interface (a key-value store of texts) and an
injected wall clock; ``triggers/watermark.py`` puts it on Airflow Variables, tests on a dict.

* :class:`WatermarkWriter` keeps one triggerer's :class:`~.watermark_table.WatermarkTable` and
  writes it as its own key: a change within :data:`~.watermark_table.FLUSH_INTERVAL_SECONDS`,
  a heartbeat anyway; its key goes when its table empties. On a clean stop it releases every
  entry and writes once, so the next triggerer resumes where this one stopped.
* :class:`WatermarkReader` reads every writer's table (one read shared by the triggers that
  start while it runs), finds the furthest watermark of a task instance's try and job, and
  deletes the tables of writers dead for :data:`~.watermark_table.STALE_SECONDS`.

Every task either starts is kept (:class:`TaskSet`) and cancelled and awaited by ``close()``.
See ``docs/design.md#the-watermark-store``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from airflow_insight.triggers.watermark_table import (
    FLUSH_INTERVAL_SECONDS,
    STALE_SECONDS,
    TaskInstanceKey,
    Watermark,
    WatermarkTable,
    read_table,
    ti_key,
)

log = logging.getLogger(__name__)

#: Wall-clock seconds (``time.time``): stored times outlive the process that wrote them.
Clock = Callable[[], float]

#: Tables read for resuming are reused this long by the other triggers of the loop.
READ_CACHE_SECONDS = 5.0
#: Triggers stopping within this window share one final write.
FINAL_FLUSH_DELAY_SECONDS = 0.05
#: Periodic writes sent and not yet answered, at most (a slow one does not hold back the next).
MAX_WRITES_IN_FLIGHT = 3
#: How long a resuming trigger's read may take. A store's first answer can take seconds (a
#: triggerer's supervisor builds its execution API on the first request: 7.5 s measured on a
#: loaded 2-core machine); waiting loses nothing (the server keeps the run log), but it must stay
#: well below the server's 60 s answer limit for a paused solve.
RESUME_READ_TIMEOUT_SECONDS = 30.0
#: On the stop signal: how long the final write may hold back the stop.
STOP_WRITE_BUDGET_SECONDS = 5.0

_Tables = dict[str, tuple[float, dict[str, Watermark]]]
_T = TypeVar("_T")


class StoreUnavailable(Exception):
    """The store did not answer (in time), or answered with an error."""


class TableStore(Protocol):
    """Where the writers' tables live: texts by key (every key is one writer's table)."""

    @property
    def answer_seconds(self) -> float:
        """How long the store is given for a periodic write, a delete or a kill's read."""

    async def keys(self, timeout: float) -> list[str]:
        """Every table's key."""

    async def get(self, key: str, timeout: float) -> str | None:
        """The text stored as ``key`` (None: no such key)."""

    async def put(self, key: str, text: str, timeout: float) -> None:
        """Create or replace ``key``."""

    async def delete(self, key: str, timeout: float) -> None:
        """Delete ``key`` (a missing one is no error)."""


class StopSignal(Protocol):
    """Tells the writer that its process is stopping (and calls its ``store_final``)."""

    @property
    def stopping(self) -> bool:
        """True once the stop began."""

    def install(self) -> bool:
        """Start listening for the stop (idempotent)."""


class TaskSet:
    """The tasks an owner started: each kept until done, all cancelled and awaited on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, coroutine: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coroutine`` as a task in a context of its own (no trigger's task log)."""
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # Read here: a caller that stopped waiting would leave it unread.
        if exc is not None and not isinstance(exc, StoreUnavailable):
            log.error("A watermark task failed", exc_info=exc)  # a bug: shown, never lost

    async def close(self) -> None:
        """Cancel every task still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class WatermarkWriter:
    """Writes one triggerer's watermark table as its own key of ``store``.

    ``pump_seconds`` is how often the periodic work (:meth:`tick`) runs by itself; None leaves it
    to the caller (a test driving the clock).
    """

    def __init__(
        self,
        store: TableStore,
        clock: Clock,
        key: str,
        *,
        pump_seconds: float | None = FLUSH_INTERVAL_SECONDS / 4,
        batch_seconds: float = FINAL_FLUSH_DELAY_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.key = key
        self.table = WatermarkTable()
        self.reader = WatermarkReader(store, clock, own_key=key)
        #: Set by the adapter: the process's stop signal (None: never stops early).
        self.stop_signal: StopSignal | None = None
        self._pump_seconds = pump_seconds
        self._batch_seconds = batch_seconds
        #: Every task it started, until done.
        self.tasks = TaskSet()
        self._pump: asyncio.Task[None] | None = None
        self._final: asyncio.Task[bool] | None = None
        self._in_flight: set[asyncio.Task[bool]] = set()
        self._stored_anything = False
        #: What the stop write stored, per task instance key (see :meth:`store_final`).
        self._stored_at_stop: dict[str, Watermark] = {}
        #: Writes stored and failed (read by the benchmark and the tests).
        self.writes = 0
        self.failures = 0

    @property
    def stopping(self) -> bool:
        """The process is stopping: forward nothing more (the stop write stores the table)."""
        return self.stop_signal is not None and self.stop_signal.stopping

    def watch_shutdown(self) -> None:
        """Store the final watermarks on the stop signal, before the process acts on it."""
        if self.stop_signal is not None:
            self.stop_signal.install()

    async def store_final(self) -> None:
        """The stop signal came: every trigger stopped forwarding; store the table once."""
        now = self.clock()
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

    def update(self, ref: TaskInstanceKey, watermark: Watermark) -> None:
        """Note a job's newest watermark; it is written within a flush interval."""
        self.table.update(ref, watermark)
        self._ensure_pump()

    def forget(self, ref: TaskInstanceKey) -> None:
        """The trigger ended: drop its entry (and the key, once the table is empty)."""
        self.table.forget(ref)
        self._ensure_pump()

    async def persist_now(self, ref: TaskInstanceKey, watermark: Watermark, timeout: float) -> bool:
        """A clean stop: keep the entry for the next triggerer and write it at once.

        Triggers stopping together (a triggerer shutdown stops them all) share one write.
        True when the store confirmed it (or the write on the stop signal stored it).
        """
        if self._stored_at_stop.get(ti_key(ref)) == watermark:
            return True
        self.table.update(ref, watermark)
        self.table.release(ref, self.clock())
        if self._final is None or self._final.done():
            self._final = self.tasks.start(self._final_write(timeout))
        return await asyncio.shield(self._final)

    async def _final_write(self, timeout: float) -> bool:
        await asyncio.sleep(self._batch_seconds)
        return await self._write(self.clock(), timeout)

    def _ensure_pump(self) -> None:
        if self._pump_seconds is not None and (self._pump is None or self._pump.done()):
            self._pump = self.tasks.start(self._run_pump(self._pump_seconds))

    async def _run_pump(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if not await self.tick():
                return

    async def tick(self) -> bool:
        """The periodic work at the clock's time; False when nothing is left to do."""
        if self.stopping:
            return False  # The stop write takes over; nothing is forwarded any more.
        now = self.clock()
        if self.table.due(now):
            if not len(self.table):
                await self._write(now, self.store.answer_seconds)
            elif len(self._in_flight) < MAX_WRITES_IN_FLIGHT:
                # Not awaited: the store answers in order, so the newest write wins, and one
                # slow answer does not make the stored state lag behind.
                task = self.tasks.start(self._write(now, self.store.answer_seconds))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            return True
        if len(self.table):
            return True
        if self._stored_anything:
            await self._delete()
        await self.reader.collect_stale()
        return False

    async def settle(self) -> None:
        """Wait for the writes under way (a test's or a benchmark's check point)."""
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def close(self) -> None:
        """Cancel and await every task this writer and its reader started."""
        await self.tasks.close()
        await self.reader.close()

    async def _write(self, now: float, timeout: float) -> bool:
        if not len(self.table):
            self.table.to_text(now)  # Nothing left: the key goes instead.
            await self._delete()
            return True
        text = self.table.to_text(now)
        self.table.written(now)
        try:
            await self.store.put(self.key, text, timeout)
        except StoreUnavailable as exc:
            self.failures += 1
            self.table.failed()
            log.warning(
                "Could not store the run-log watermarks as %s (a triggerer restart would repeat"
                " lines forwarded since the last write): %s",
                self.key,
                exc,
            )
            return False
        self.writes += 1
        self._stored_anything = True
        return True

    async def _delete(self) -> None:
        try:
            await self.store.delete(self.key, self.store.answer_seconds)
            self._stored_anything = False
        except StoreUnavailable as exc:
            log.warning("Could not delete %s: %s", self.key, exc)


class WatermarkReader:
    """Finds the furthest stored watermark of a task instance across every writer's table.

    A read is shared by every caller that asks while it runs or soon after, but never by a
    caller that needs data newer than the read: ``not_before`` (a trigger passes the time it was
    built, on the same clock) makes sure a trigger rebuilt after a clean stop sees the stop's
    final write.
    """

    def __init__(self, store: TableStore, clock: Clock, own_key: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.own_key = own_key
        #: Every task it started, until done.
        self.tasks = TaskSet()
        #: The last read: when it started, and what it found.
        self._cache: tuple[float, _Tables] | None = None
        self._loading: tuple[float, asyncio.Task[_Tables]] | None = None

    async def find(
        self,
        ref: TaskInstanceKey,
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

    async def latest_for(self, ref: TaskInstanceKey) -> Watermark | None:
        """The entry of ``ref`` written by the latest try (any job), for the kill decision."""
        tables = await self._tables(float("inf"), self.store.answer_seconds)
        marks = [found for _, table in tables.values() if (found := table.get(ti_key(ref)))]
        return max(marks, key=lambda mark: mark.try_number, default=None)

    async def collect_stale(self) -> None:
        """Delete the tables of dead writers (not written for ``STALE_SECONDS``)."""
        try:
            await self._tables(float("inf"), self.store.answer_seconds)
        except StoreUnavailable as exc:
            log.debug("Could not look for stale watermark tables: %s", exc)

    async def close(self) -> None:
        """Cancel and await a read under way."""
        await self.tasks.close()

    async def _tables(self, not_before: float, timeout: float) -> _Tables:
        """Tables from a read that started at ``not_before`` or later (inf: a fresh read).

        The read itself may take :data:`RESUME_READ_TIMEOUT_SECONDS` (it is shared); this caller
        waits ``timeout`` for it at most.
        """
        now = self.clock()
        not_before = min(not_before, now)
        cache = self._cache
        # A wall clock may step back: a read from "the future" is not reused.
        if (
            cache is not None
            and cache[0] >= not_before
            and 0 <= now - cache[0] < READ_CACHE_SECONDS
        ):
            return cache[1]
        loading = self._loading
        if loading is None or loading[1].done() or loading[0] < not_before:
            loading = self._loading = (now, self.tasks.start(self._load()))
        try:
            async with asyncio.timeout(timeout):
                tables = await asyncio.shield(loading[1])
        except TimeoutError:
            raise StoreUnavailable(f"no answer within {timeout:g} s") from None
        if self._cache is None or self._cache[0] < loading[0]:
            self._cache = (loading[0], tables)
        return tables

    async def _load(self) -> _Tables:
        tables: _Tables = {}
        timeout = RESUME_READ_TIMEOUT_SECONDS
        for key in await self.store.keys(timeout):
            written_at, marks = read_table(await self.store.get(key, timeout))
            if key != self.own_key and self.clock() - written_at > STALE_SECONDS:
                await self._delete_stale(key)
                continue
            tables[key] = (written_at, marks)
        return tables

    async def _delete_stale(self, key: str) -> None:
        log.info("Deleting %s: its triggerer has not written it for long", key)
        try:
            await self.store.delete(key, self.store.answer_seconds)
        except StoreUnavailable as exc:
            log.warning("Could not delete %s: %s", key, exc)
