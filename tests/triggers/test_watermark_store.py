"""The watermark store's logic on an in-memory store with a clock the test moves (no sleeps).

What Airflow adds (Variables through the triggerer's supervisor, the stop signal) is tested in
test_trigger_airflow.py; here: when a writer writes, resuming, leases and garbage collection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from watermark_memory import DrivenClock, MemoryStore

from airflow_insight.compat.supervisor import TaskInstanceRef
from airflow_insight.triggers.watermark_store import (
    READ_CACHE_SECONDS,
    StoreUnavailable,
    WatermarkReader,
    WatermarkWriter,
)
from airflow_insight.triggers.watermark_table import (
    FLUSH_INTERVAL_SECONDS,
    HEARTBEAT_SECONDS,
    STALE_SECONDS,
    Watermark,
    read_table,
    ti_key,
)

REF = TaskInstanceRef("dag", "run", "task", -1, 1)
OTHER = TaskInstanceRef("dag", "run", "task", 3, 1)


def _run(test: Callable[[MemoryStore, DrivenClock], Awaitable[None]]) -> None:
    asyncio.run(test(MemoryStore(), DrivenClock()))


def _writer(store: MemoryStore, clock: DrivenClock, name: str = "a") -> WatermarkWriter:
    """A writer whose periodic work the test drives (``tick``) and whose final write is not held."""
    return WatermarkWriter(store, clock, f"w.{name}", pump_seconds=None, batch_seconds=0.0)


def _stored(store: MemoryStore, key: str) -> dict[str, Watermark]:
    return read_table(store.texts[key])[1]


async def _tick(writer: WatermarkWriter) -> bool:
    going = await writer.tick()
    await writer.settle()
    return going


def test_a_change_is_written_within_the_interval_and_not_more_often() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        writer.update(REF, Watermark("j", 0, 5, 1))
        assert await _tick(writer)
        assert _stored(store, "w.a") == {ti_key(REF): Watermark("j", 0, 5, 1)}
        writer.update(REF, Watermark("j", 0, 9, 1))
        clock.advance(FLUSH_INTERVAL_SECONDS / 2)
        await _tick(writer)
        assert writer.writes == 1, "a change waits for the interval"
        clock.advance(FLUSH_INTERVAL_SECONDS / 2)
        await _tick(writer)
        assert writer.writes == 2
        assert _stored(store, "w.a") == {ti_key(REF): Watermark("j", 0, 9, 1)}
        await writer.close()

    _run(main)


def test_an_unchanged_table_is_rewritten_for_the_heartbeat_with_its_time() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        writer.update(REF, Watermark("j", 0, 5, 1))
        await _tick(writer)
        clock.advance(HEARTBEAT_SECONDS - 1)
        await _tick(writer)
        assert writer.writes == 1
        clock.advance(1)
        await _tick(writer)
        assert writer.writes == 2
        assert read_table(store.texts["w.a"])[0] == clock.now, "stamped by the one clock"
        await writer.close()

    _run(main)


def test_the_key_goes_when_the_last_job_ends_and_the_pump_stops() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        writer.update(REF, Watermark("j", 0, 5, 1))
        await _tick(writer)
        writer.forget(REF)
        clock.advance(FLUSH_INTERVAL_SECONDS)
        assert await _tick(writer)
        assert "w.a" not in store.texts
        assert not await _tick(writer), "nothing left to do"
        await writer.close()

    _run(main)


def test_a_failed_write_is_retried_at_the_next_interval() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        writer.update(REF, Watermark("j", 0, 5, 1))
        store.failing = True
        await _tick(writer)
        assert (writer.writes, writer.failures) == (0, 1)
        store.failing = False
        clock.advance(FLUSH_INTERVAL_SECONDS)
        await _tick(writer)
        assert writer.writes == 1 and _stored(store, "w.a")
        await writer.close()

    _run(main)


def test_a_released_entry_is_a_lease_the_next_writer_resumes_from() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        stopped = _writer(store, clock, "stopped")
        assert await stopped.persist_now(REF, Watermark("j", 2, 40, 1), timeout=5.0)
        reader = WatermarkReader(store, clock)
        assert await reader.find(REF, "j") == Watermark("j", 2, 40, 1)
        assert await reader.find(REF, "other-job") is None
        later_try = TaskInstanceRef("dag", "run", "task", -1, 2)
        assert await WatermarkReader(store, clock).find(later_try, "j") is None
        await stopped.close()

    _run(main)


def test_the_furthest_watermark_of_any_writer_wins() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        first, second = _writer(store, clock, "1"), _writer(store, clock, "2")
        await first.persist_now(REF, Watermark("j", 1, 90, 1), timeout=5.0)
        await second.persist_now(REF, Watermark("j", 2, 3, 1), timeout=5.0)
        assert await WatermarkReader(store, clock).find(REF, "j") == Watermark("j", 2, 3, 1)
        await first.close()
        await second.close()

    _run(main)


def test_a_lease_ends_after_stale_seconds() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        writer.update(OTHER, Watermark("k", 0, 1, 1))
        await writer.persist_now(REF, Watermark("j", 0, 7, 1), timeout=5.0)
        clock.advance(STALE_SECONDS)
        await _tick(writer)
        assert ti_key(REF) in _stored(store, "w.a"), "still leased"
        clock.advance(1)
        await _tick(writer)
        assert _stored(store, "w.a") == {ti_key(OTHER): Watermark("k", 0, 1, 1)}
        await writer.close()

    _run(main)


def test_a_dead_writers_table_is_collected_and_a_live_one_kept() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        dead, live = _writer(store, clock, "dead"), _writer(store, clock, "live")
        await dead.persist_now(REF, Watermark("j", 0, 7, 1), timeout=5.0)
        clock.advance(STALE_SECONDS)
        await live.persist_now(OTHER, Watermark("k", 0, 1, 1), timeout=5.0)
        await WatermarkReader(store, clock).collect_stale()
        assert set(store.texts) == {"w.dead", "w.live"}, "not stale yet"
        clock.advance(1)
        await WatermarkReader(store, clock).collect_stale()
        assert set(store.texts) == {"w.live"}
        clock.advance(STALE_SECONDS + 1)
        await live.reader.collect_stale()
        assert set(store.texts) == {"w.live"}, "a writer never collects its own table"
        await dead.close()
        await live.close()

    _run(main)


def test_a_writer_whose_table_empties_collects_stale_tables() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        store.texts["w.dead"] = '{"written_at": 0, "jobs": {}}'
        writer = _writer(store, clock)
        writer.update(REF, Watermark("j", 0, 5, 1))
        await _tick(writer)
        writer.forget(REF)
        clock.advance(FLUSH_INTERVAL_SECONDS)
        await _tick(writer)
        assert not await _tick(writer)
        assert store.texts == {}
        await writer.close()

    _run(main)


def test_one_read_is_shared_but_never_older_than_asked() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        await writer.persist_now(REF, Watermark("j", 0, 5, 1), timeout=5.0)
        reader = WatermarkReader(store, clock)
        built = clock.now
        assert (await reader.find(REF, "j", not_before=built)).last_run_log_line == 5  # type: ignore[union-attr]
        reads = len(store.calls)
        assert await reader.find(REF, "j", not_before=built) is not None
        assert len(store.calls) == reads, "shared: no second read"
        clock.advance(0.5)
        await writer.persist_now(REF, Watermark("j", 0, 9, 1), timeout=5.0)
        built_after = clock.now
        assert (await reader.find(REF, "j", not_before=built_after)).last_run_log_line == 9  # type: ignore[union-attr]
        clock.advance(READ_CACHE_SECONDS)
        reads = len(store.calls)
        await reader.find(REF, "j")
        assert len(store.calls) > reads, "an old read is not reused"
        await writer.close()

    _run(main)


def test_a_clock_stepped_back_does_not_keep_a_read_alive() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        reader = WatermarkReader(store, clock)
        await reader.find(REF, "j")
        clock.advance(-3600)
        reads = len(store.calls)
        await reader.find(REF, "j")
        assert len(store.calls) > reads

    _run(main)


def test_the_latest_try_is_what_the_kill_decision_reads() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        old, new = _writer(store, clock, "old"), _writer(store, clock, "new")
        await old.persist_now(REF, Watermark("j-1", 0, 5, 1), timeout=5.0)
        await new.persist_now(REF, Watermark("j-2", 0, 1, 2), timeout=5.0)
        assert await WatermarkReader(store, clock).latest_for(REF) == Watermark("j-2", 0, 1, 2)
        await old.close()
        await new.close()

    _run(main)


def test_a_store_that_does_not_answer_is_reported_not_raised_as_anything_else() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        store.failing = True
        reader = WatermarkReader(store, clock)
        with pytest.raises(StoreUnavailable):
            await reader.find(REF, "j")
        await reader.collect_stale()  # garbage collection gives up quietly
        writer = _writer(store, clock)
        assert not await writer.persist_now(REF, Watermark("j", 0, 1, 1), timeout=5.0)
        await writer.close()

    _run(main)


class _Signal:
    """A stop signal the test raises (the adapter's is the trigger runner's SIGTERM)."""

    def __init__(self) -> None:
        self.stopping = False
        self.installed = 0

    def install(self) -> bool:
        self.installed += 1
        return True


def test_the_stop_write_releases_every_entry_once_and_stops_the_periodic_work() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = _writer(store, clock)
        signal = writer.stop_signal = _Signal()
        writer.watch_shutdown()
        assert signal.installed == 1
        writer.update(REF, Watermark("j", 0, 5, 1))
        signal.stopping = True
        assert writer.stopping and not await writer.tick()
        await writer.store_final()
        assert _stored(store, "w.a") == {ti_key(REF): Watermark("j", 0, 5, 1)}
        writes = writer.writes
        assert await writer.persist_now(REF, Watermark("j", 0, 5, 1), timeout=5.0)
        assert writer.writes == writes, "the stop write already stored it"
        await writer.close()

    _run(main)


def test_close_cancels_and_awaits_every_task_it_started() -> None:
    async def main(store: MemoryStore, clock: DrivenClock) -> None:
        writer = WatermarkWriter(store, clock, "w.a", pump_seconds=3600.0, batch_seconds=3600.0)
        writer.update(REF, Watermark("j", 0, 5, 1))  # starts the periodic pump
        final = asyncio.ensure_future(writer.persist_now(OTHER, Watermark("k", 0, 1, 1), 5.0))
        await asyncio.sleep(0)  # let the final write's task start (it waits an hour)
        assert len(writer.tasks) == 2
        await writer.close()
        assert len(writer.tasks) == 0
        with pytest.raises(asyncio.CancelledError):
            await final

    _run(main)
