"""The solver-progress PNG, drawn from a series recorded from a real xpress solve.

``fctp-stopped-at-1pct.json`` is the ``progress`` part of the task result of the example DAG
(``scripts/demo insight_solver_progress``: example_dags/models/fixed_charge_transport solved by
xpress 9.9 under the emulator), stopped by a 1 % gap rule. What the picture shows is tested on
its layout (:func:`picture_layout`, no pixels); the rendering on the real series.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_insight import progress as p
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress_plot import picture_layout, render_progress_png, write_progress_png

# The plot extra is part of the test extra; without it only the last test could run.
image = pytest.importorskip(
    "matplotlib.image", reason="the optional 'plot' extra (matplotlib) is not installed"
)

REAL_SUMMARY = Path(__file__).with_name("fctp-stopped-at-1pct.json")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def real_summary() -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(REAL_SUMMARY.read_text())
    return summary


def real_series() -> dict[str, Any]:
    return dict(real_summary()["series"])


def series(*rows: tuple[float, float | None, float | None, float | None]) -> dict[str, Any]:
    """A series' JSON form from (received time, best, bound, solver time) rows."""
    return {
        "fields": list(p.SERIES_FIELDS),
        "points": [
            [time, best, bound, p.relative_gap(best, bound), solver]
            for time, best, bound, solver in rows
        ],
    }


GAP_STOP = {"rule": {"rule": "relative_gap", "relative_gap": 0.01}, "reason": "..."}


def pixels(png: bytes) -> Any:
    return image.imread(io.BytesIO(png), format="png")


def test_real_series_draws_a_picture() -> None:
    series = real_series()
    assert len(series["points"]) > 10

    png = render_progress_png(
        series,
        title="fixed-charge transport",
        target_gap=0.01,
        stopped_by=real_summary()["stopped_by"],
    )

    assert png.startswith(PNG_SIGNATURE)
    drawn = pixels(png)
    assert drawn.shape[:2] == (550, 800)
    # Not a blank canvas: curves in several colours.
    assert drawn[..., :3].std() > 0.05


def test_write_creates_folders_and_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "results" / "2026-01-01" / "solve-progress.png"

    written = write_progress_png(real_series(), target, target_gap=0.01)

    assert written == target
    assert target.read_bytes().startswith(PNG_SIGNATURE)
    assert [path.name for path in target.parent.iterdir()] == ["solve-progress.png"]


def test_a_live_series_and_an_empty_one_both_draw() -> None:
    series = p.ProgressSeries(limit=10)
    for index, (best, bound) in enumerate([(None, 90.0), (120.0, 95.0), (110.0, 99.0)]):
        series.add(
            p.ProgressRecord(
                "job-1",
                f"m{index}",
                "GLOBALLOG",
                time=float(index),
                best_solution=best,
                best_bound=bound,
                relative_gap=p.relative_gap(best, bound),
            )
        )
    assert render_progress_png(series).startswith(PNG_SIGNATURE)
    assert render_progress_png({"fields": list(p.SERIES_FIELDS), "points": []}).startswith(
        PNG_SIGNATURE
    )


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)

    with pytest.raises(ConfigurationError) as caught:
        render_progress_png(real_series())

    assert "plot" in str(caught.value)
    assert "pip install 'airflow-insight[plot]'" in str(caught.value)


def test_the_time_axis_is_the_solvers_clock_not_the_arrival_of_messages() -> None:
    # A deferred solve: paused 7 s at its first callback, so the messages arrived within 4.8 s
    # while the solver's own clock reached 11.8 s.
    deferred = series(
        (0.0, 18000.0, 0.0, 0.0), (0.1, 9000.0, 5000.0, 7.0), (4.8, 5700.0, 5650.0, 11.8)
    )

    layout = picture_layout(deferred, stopped_by={**GAP_STOP, "solver_time": 11.8})

    assert layout.solver_clock and layout.time_label == "solver time (s)"
    assert layout.best.xs == [0.0, 7.0, 11.8]
    assert layout.stop_at == 11.8 and layout.stop_label == "stopped: gap ≤ 1 %"


def test_without_solver_times_the_axis_says_it_shows_arrival_times() -> None:
    layout = picture_layout(series((0.0, 120.0, 100.0, None), (2.5, 110.0, 100.0, None)))
    assert not layout.solver_clock
    assert layout.time_label == "s since the first progress message (no solver time reported)"
    assert layout.best.xs == [0.0, 2.5]


def test_a_trivial_first_bound_is_clipped_with_a_mark_not_scaled_to() -> None:
    trivial = series(
        (0.0, 18000.0, 0.0, 0.2), (1.0, 5906.0, 5503.2, 2.5), (2.0, 5680.0, 5623.12, 29.1)
    )

    layout = picture_layout(trivial)

    assert layout.objective_limits is not None
    low, high = layout.objective_limits
    assert 5400.0 < low < 5503.2 and 5906.0 < high < 6000.0  # from the first real gap on
    # Marked at the axis edges where they were.
    assert layout.clipped == [("best solution", 0.2, 18000.0), ("best bound", 0.2, 0.0)]
    assert "(off the scale: ▲ best solution 18000, ▼ best bound 0)" in layout.subtitle
    floor, top = layout.gap_limits
    assert floor < 1.0 and top >= 100.0  # log scale: 100 % and 1 % both in view


def test_all_three_series_are_steps_held_to_the_end_of_the_solve() -> None:
    rows = series((0.0, 120.0, 90.0, 1.0), (1.0, 110.0, 95.0, 3.0))

    layout = picture_layout(rows, stopped_by={**GAP_STOP, "solver_time": 4.0})

    assert layout.best.xs == layout.bound.xs == layout.gap.xs == [1.0, 3.0, 4.0]
    assert layout.best.ys == [120.0, 110.0, 110.0]
    assert layout.bound.ys == [90.0, 95.0, 95.0]
    assert layout.gap.ys[-1] == layout.gap.ys[-2]


@pytest.mark.parametrize(
    ("seconds", "unit", "last"),
    [(2.0, "s", 2.0), (600.0, "min", 10.0), (2 * 3600.0, "h", 2.0)],
)
def test_the_time_unit_keeps_numbers_short_for_any_length(
    seconds: float, unit: str, last: float
) -> None:
    layout = picture_layout(series((0.0, 120.0, 90.0, 0.0), (1.0, 110.0, 100.0, seconds)))
    assert layout.unit == unit and layout.best.xs[-1] == pytest.approx(last)


def test_a_proved_optimum_sits_on_the_gap_floor_marked() -> None:
    layout = picture_layout(
        series((0.0, 120.0, 90.0, 0.5), (1.0, 100.0, 100.0, 2.0)), target_gap=0.01
    )
    floor, _ = layout.gap_limits
    assert layout.gap.ys[-1] == floor > 0.0
    assert layout.gap_zero_at == 2.0
    assert layout.target_gap_percent == 1.0
    assert layout.stop_at is None  # no rule stopped it


def test_the_real_stopped_solve_is_marked_where_the_rule_fired() -> None:
    summary = real_summary()

    layout = picture_layout(summary["series"], target_gap=0.01, stopped_by=summary["stopped_by"])

    assert layout.solver_clock
    assert layout.stop_at == summary["stopped_by"]["solver_time"] == layout.best.xs[-1]
    assert "gap 1.00%" in layout.subtitle
