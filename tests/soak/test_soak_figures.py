"""The soak's arithmetic: the line comparison that decides "lost" and "repeated", and slopes."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.soak import Sample, Tally, compare_lines, milestones, slope_per_hour  # noqa: E402

LOG = ["j: run-log line 0", "j: run-log line 1", "j: run-log line 2"]


def test_compare_lines_counts_lost_and_repeated() -> None:
    assert compare_lines(LOG, LOG) == (0, 0)
    assert compare_lines(LOG, LOG[:1] + LOG[2:]) == (1, 0)
    assert compare_lines(LOG, LOG + LOG[1:2]) == (0, 1)
    assert compare_lines(LOG, [*LOG[:2], "k: run-log line 0"]) == (1, 1)


def test_tally_records_wrong_ends_and_order() -> None:
    tally = Tally()
    tally.add({"job": "a", "status": "COMPLETED", "lines": LOG}, LOG)
    tally.add({"job": "b", "status": "FAILED", "lines": LOG[::-1]}, LOG)
    tally.add({"job": "c", "status": "COMPLETED", "lines": LOG[:2], "rest": 1}, LOG)
    assert (tally.jobs, tally.lost, tally.repeated, tally.lines_from_rest) == (3, 1, 0, 1)
    assert tally.wrong_ends == [{"job": "b", "status": "FAILED"}]
    assert tally.out_of_order_jobs == 1
    assert [fault["job"] for fault in tally.line_faults] == ["b", "c"]


def test_slope_per_hour_and_milestones() -> None:
    assert slope_per_hour([(0.0, 10.0), (1800.0, 11.0), (3600.0, 12.0)]) == 2.0
    assert slope_per_hour([(0.0, 1.0), (60.0, 1.0)]) is None
    samples = [Sample(float(t), 1.0, 4, 0.0, 1.0, 0) for t in range(0, 1300, 60)]
    assert [s.at_seconds for s in milestones(samples, 600.0)] == [0.0, 600.0, 1200.0, 1260.0]
