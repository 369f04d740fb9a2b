"""The watermark table (pure: every time is passed in) and its stored form."""

from __future__ import annotations

import json

import pytest

from airflow_insight.compat.supervisor import TaskInstanceRef
from airflow_insight.triggers.watermark_table import (
    FLUSH_INTERVAL_SECONDS,
    HEARTBEAT_SECONDS,
    STALE_SECONDS,
    Watermark,
    WatermarkTable,
    read_table,
    ti_key,
)

REF = TaskInstanceRef("dag", "run", "task", -1, 1)
OTHER = TaskInstanceRef("dag", "run", "task", 3, 1)


def _marks(table: WatermarkTable, now: float) -> dict[str, Watermark]:
    return read_table(table.to_text(now))[1]


def test_a_change_is_written_at_most_once_per_interval() -> None:
    table = WatermarkTable()
    assert not table.due(0.0)  # empty: nothing to write
    table.update(REF, Watermark("j", 0, 5, 1))
    assert table.due(0.0)
    table.to_text(0.0)
    table.written(0.0)
    table.update(REF, Watermark("j", 0, 9, 1))
    assert not table.due(FLUSH_INTERVAL_SECONDS / 2)
    assert table.due(FLUSH_INTERVAL_SECONDS)
    assert _marks(table, 1.0) == {ti_key(REF): Watermark("j", 0, 9, 1)}


def test_an_unchanged_table_is_rewritten_only_for_the_heartbeat() -> None:
    table = WatermarkTable()
    table.update(REF, Watermark("j", 0, 5, 1))
    table.to_text(0.0)
    table.written(0.0)
    table.update(REF, Watermark("j", 0, 5, 1))  # the same watermark: no change
    assert not table.due(HEARTBEAT_SECONDS - 1)
    assert table.due(HEARTBEAT_SECONDS)


def test_many_jobs_share_one_write() -> None:
    table = WatermarkTable()
    refs = [TaskInstanceRef("dag", "run", "task", n, 1) for n in range(1000)]
    for n, ref in enumerate(refs):
        table.update(ref, Watermark(f"j{n}", 0, n, 1))
    text = table.to_text(0.0)
    assert len(read_table(text)[1]) == 1000
    assert "secret" not in text and "token" not in text


def test_an_ended_job_leaves_the_table_and_a_released_one_stays_a_while() -> None:
    table = WatermarkTable()
    table.update(REF, Watermark("j", 0, 5, 1))
    table.update(OTHER, Watermark("k", 0, 7, 1))
    table.to_text(0.0)
    table.written(0.0)
    table.forget(REF)
    table.release(OTHER, 10.0)
    assert table.due(10.0)
    assert _marks(table, 10.0) == {ti_key(OTHER): Watermark("k", 0, 7, 1)}
    table.written(10.0)
    table.due(10.0 + STALE_SECONDS)
    assert len(table) == 1  # released, kept for the next triggerer
    assert table.due(11.0 + STALE_SECONDS)  # dropped: a change to write
    assert _marks(table, 12.0 + STALE_SECONDS) == {}
    assert len(table) == 0


def test_a_failed_write_is_retried() -> None:
    table = WatermarkTable()
    table.update(REF, Watermark("j", 0, 5, 1))
    table.to_text(0.0)
    table.failed()
    assert table.due(FLUSH_INTERVAL_SECONDS)


@pytest.mark.parametrize(
    "text",
    [None, "", "not json", "[]", '{"jobs": []}', '{"jobs": {"a": {"compute_job_id": 3}}}'],
)
def test_unreadable_tables_read_as_empty(text: str | None) -> None:
    assert read_table(text)[1] == {}


def test_bad_entries_are_skipped_good_ones_kept() -> None:
    good = {"compute_job_id": "j", "execution_attempts": 1, "last_run_log_line": 4}
    bad = {"compute_job_id": "j", "execution_attempts": True, "last_run_log_line": 4}
    written_at, marks = read_table(json.dumps({"written_at": 5, "jobs": {"a": good, "b": bad}}))
    assert written_at == 5
    assert marks == {"a": Watermark("j", 1, 4, 0)}


def test_order_of_watermarks() -> None:
    mark = Watermark("j", 1, 10)
    assert mark.is_after(1, 9) and mark.is_after(0, 50)
    assert not mark.is_after(1, 10) and not mark.is_after(2, 0)
