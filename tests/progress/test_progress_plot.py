"""The solver-progress PNG, drawn from a series recorded from a real xpress solve.

``fctp-stopped-at-1pct.json`` is the ``SolverProgress.summary()`` of the example model
(example_dags/models/fixed_charge_transport) solved by xpress 9.9 with its INTSOL and MIP-log
callbacks turned into APP_MESSAGE wire text, stopped by a 1 % gap rule.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress_plot import render_progress_png, write_progress_png
from airflow_insight.protocol import progress as p

# The plot extra is part of the test extra; without it only the last test could run.
image = pytest.importorskip("matplotlib.image")

REAL_SUMMARY = Path(__file__).with_name("fctp-stopped-at-1pct.json")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def real_series() -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(REAL_SUMMARY.read_text())
    return dict(summary["series"])


def pixels(png: bytes) -> Any:
    return image.imread(io.BytesIO(png), format="png")


def test_real_series_draws_a_picture() -> None:
    series = real_series()
    assert len(series["points"]) > 10

    png = render_progress_png(series, title="fixed-charge transport", target_gap=0.01)

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
