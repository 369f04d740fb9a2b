"""Run-log bookkeeping: exactly once, in order, across gaps, duplicates and requeues."""

from __future__ import annotations

from airflow_insight.protocol.events import RunLogEvent, RunLogGap, RunLogLines
from airflow_insight.protocol.runlog import RunLog, split_run_log


def lines(events: list[RunLogEvent]) -> list[str]:
    return [line for event in events if isinstance(event, RunLogLines) for line in event.lines]


def text(count: int, start: int = 0) -> list[str]:
    return [f"line {n}" for n in range(start, start + count)]


def test_in_order_batches_are_forwarded_once() -> None:
    log = RunLog("j")
    first = log.accept(0, text(3))
    assert first == [RunLogLines("j", 0, 0, ("line 0", "line 1", "line 2"))]
    assert lines(log.accept(3, text(2, 3))) == ["line 3", "line 4"]
    assert log.last_forwarded_line == 4
    assert log.last_server_line == 4


def test_duplicates_and_overlaps_are_dropped() -> None:
    log = RunLog("j")
    log.accept(0, text(4))
    assert log.accept(0, text(4)) == []
    assert lines(log.accept(2, text(4, 2))) == ["line 4", "line 5"]
    assert log.accept(1, []) == []


def test_out_of_order_batch_waits_for_the_gap() -> None:
    log = RunLog("j")
    log.accept(0, text(2))
    assert log.accept(5, text(2, 5)) == []
    assert log.buffered_line_count == 2
    # SUBSCRIBE must ask for a replay from the gap, not from the highest line seen.
    assert log.last_server_line == 1
    events = log.accept(2, text(3, 2))
    assert events == [RunLogLines("j", 0, 2, tuple(text(5, 2)))]
    assert log.buffered_line_count == 0


def test_final_rest_log_fills_the_gap_without_duplicates() -> None:
    log = RunLog("j")
    log.accept(0, text(2))
    log.accept(4, ["buffered 4"])
    rest = "\n".join(text(6)) + "\n"
    events = log.fill_from_text(rest)
    # The REST text wins for the positions it covers.
    assert events == [RunLogLines("j", 0, 2, ("line 2", "line 3", "line 4", "line 5"))]
    assert log.last_forwarded_line == 5
    assert log.fill_from_text(rest) == []


def test_buffered_lines_beyond_a_short_rest_log_are_kept_with_a_gap() -> None:
    log = RunLog("j")
    log.accept(0, text(1))
    log.accept(5, ["five"])
    events = log.fill_from_text("line 0\nline 1\n")
    assert events == [
        RunLogLines("j", 0, 1, ("line 1",)),
        RunLogGap("j", 2, 4),
        RunLogLines("j", 0, 5, ("five",)),
    ]


def test_flush_reports_each_hole() -> None:
    log = RunLog("j")
    log.accept(2, ["two"])
    log.accept(6, ["six", "seven"])
    assert log.flush() == [
        RunLogGap("j", 0, 1),
        RunLogLines("j", 0, 2, ("two",)),
        RunLogGap("j", 3, 5),
        RunLogLines("j", 0, 6, ("six", "seven")),
    ]
    assert log.flush() == []


def test_buffer_limit_gives_up_the_gap_so_live_lines_keep_flowing() -> None:
    log = RunLog("j", max_buffered_lines=3)
    log.accept(0, ["zero"])
    assert log.accept(2, text(3, 2)) == []
    events = log.accept(5, ["line 5"])
    assert events[0] == RunLogGap("j", 1, 1)
    assert lines(events) == ["line 2", "line 3", "line 4", "line 5"]


def test_requeue_with_continued_numbering() -> None:
    log = RunLog("j", execution_attempts=1)
    log.accept(0, text(3))
    log.new_attempt(2)
    events = log.accept(3, ["again 3"])
    assert events == [RunLogLines("j", 2, 3, ("again 3",))]
    assert log.last_server_line == 3


def test_requeue_with_numbering_restarting_at_zero() -> None:
    log = RunLog("j", execution_attempts=1)
    log.accept(0, text(3))
    log.accept(5, ["lost gap after this"])
    log.new_attempt(2)
    events = log.accept(0, ["attempt 2 line 0", "attempt 2 line 1"])
    assert events == [
        RunLogGap("j", 3, 4),
        RunLogLines("j", 1, 5, ("lost gap after this",)),
        RunLogLines("j", 2, 6, ("attempt 2 line 0", "attempt 2 line 1")),
    ]
    # SUBSCRIBE speaks the server's per-attempt numbering; duplicates are still dropped.
    assert log.last_server_line == 1
    assert log.accept(0, ["attempt 2 line 0"]) == []
    assert lines(log.accept(2, ["attempt 2 line 2"])) == ["attempt 2 line 2"]
    assert log.last_forwarded_line == 8


def test_late_batch_of_the_earlier_attempt_at_zero_does_not_switch_numbering() -> None:
    log = RunLog("j")
    log.accept(0, text(5))
    log.new_attempt(2)
    # A duplicate of attempt 1's first batch arrives after the requeue: nothing is forwarded.
    assert log.accept(0, text(3)) == []
    assert log.last_server_line == 4
    # Numbering continues: the new attempt's lines follow on at their positions.
    assert log.accept(5, ["second 0"]) == [RunLogLines("j", 2, 5, ("second 0",))]
    assert log.last_server_line == 5


def test_restart_at_zero_is_still_recognised_after_a_repeated_batch() -> None:
    log = RunLog("j")
    log.accept(0, text(5))
    log.new_attempt(2)
    assert log.accept(0, text(2)) == []  # late batch of attempt 1
    assert log.accept(0, ["second 0", "second 1"]) == [
        RunLogLines("j", 2, 5, ("second 0", "second 1"))
    ]
    assert log.last_server_line == 1  # the server's per-attempt numbering
    log.new_attempt(3)
    assert log.accept(0, ["second 0"]) == []  # late batch of attempt 2
    assert lines(log.accept(0, ["third 0"])) == ["third 0"]
    assert log.last_forwarded_line == 7


def test_stale_attempt_numbers_are_ignored() -> None:
    log = RunLog("j", execution_attempts=2)
    log.new_attempt(1)
    log.new_attempt(2)
    assert log.execution_attempts == 2
    assert log.accept(0, ["a"]) == [RunLogLines("j", 2, 0, ("a",))]


def test_resume_from_a_known_line_and_keep_a_tail() -> None:
    log = RunLog("j", last_forwarded_line=9, tail_lines=2)
    assert log.accept(5, text(5, 5)) == []
    assert lines(log.accept(8, text(4, 8))) == ["line 10", "line 11"]
    assert log.tail == ("line 10", "line 11")


def test_split_run_log_numbers_lines_like_the_socket() -> None:
    assert split_run_log("") == []
    assert split_run_log("a\r\nb\n") == ["a", "b"]
    assert split_run_log("a\n\nb") == ["a", "", "b"]
    # A form feed inside a solver line is not a line break.
    assert split_run_log("x\x0cy\nz") == ["x\x0cy", "z"]


def _retained_bytes(feed: int, line_chars: int) -> int:
    """Bytes one RunLog keeps after forwarding ``feed`` fresh lines of ``line_chars``
    characters in batches of 50 (the forwarded events are dropped, as a sink does)."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        log = RunLog("j")
        for start in range(0, feed, 50):
            batch = [f"{n:06d} " + "x" * (line_chars - 7) for n in range(start, start + 50)]
            log.accept(start, batch)
        del batch
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert log.last_forwarded_line == feed - 1
    return kept


def test_the_kept_head_is_bounded_whatever_the_log_length() -> None:
    # A long follow keeps a few kB per job, not its first thousand lines.
    assert _retained_bytes(5_000, 80) < 16 * 1024
    assert _retained_bytes(5_000, 400) < 16 * 1024
    assert _retained_bytes(200, 80) < 16 * 1024


def test_a_long_first_batch_is_recognised_as_a_repeat_on_the_kept_head() -> None:
    log = RunLog("j")
    first = text(3_000)
    log.accept(0, first)
    log.new_attempt(2)
    # A replay of attempt 1 from line 0: a repeat, dropped.
    assert log.accept(0, first) == []
    # A new attempt restarting at 0 whose first lines differ: numbered after what was forwarded.
    assert log.accept(0, ["second 0"]) == [RunLogLines("j", 2, 3_000, ("second 0",))]
