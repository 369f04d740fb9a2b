"""The solver-progress picture: best solution, best bound and relative gap over time, as a PNG.

Needs the optional ``plot`` extra (``pip install 'airflow-insight[plot]'``, which brings
matplotlib). Drawing uses matplotlib's Agg canvas directly, never ``pyplot``: no global backend
is switched, no window can open, and two tasks drawing at once in one worker do not share state.

Public API::

    write_progress_png(series, path, *, title=None, target_gap=None) -> Path
    render_progress_png(series, *, title=None, target_gap=None) -> bytes

``series`` is the JSON form of :class:`~airflow_insight.protocol.progress.ProgressSeries` (what
the task's XCom result carries under ``progress.series``) or the series itself.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.progress import ProgressPoint, ProgressSeries, series_points

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_MISSING_EXTRA = (
    "Drawing the solver-progress picture needs matplotlib, which is not installed: install "
    "the 'plot' extra (pip install 'airflow-insight[plot]')"
)


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigurationError(_MISSING_EXTRA) from exc
    return Figure


def _points(series: Mapping[str, Any] | ProgressSeries) -> list[ProgressPoint]:
    if isinstance(series, ProgressSeries):
        return list(series.points)
    return series_points(series)


def _draw(
    figure: Figure, points: Sequence[ProgressPoint], title: str | None, target_gap: float | None
) -> None:
    values, gaps = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    with_best = [pt for pt in points if pt.best_solution is not None]
    with_bound = [pt for pt in points if pt.best_bound is not None]
    with_gap = [pt for pt in points if pt.relative_gap is not None]
    # The incumbent only changes at new solutions: a step curve, held until the next one.
    values.step(
        [pt.time for pt in with_best],
        [pt.best_solution for pt in with_best],
        where="post",
        label="best solution",
        color="tab:blue",
    )
    values.plot(
        [pt.time for pt in with_bound],
        [pt.best_bound for pt in with_bound],
        label="best bound",
        color="tab:orange",
    )
    values.set_ylabel("objective")
    values.legend(loc="best")
    values.grid(True, alpha=0.3)
    gaps.plot(
        [pt.time for pt in with_gap],
        [100.0 * (pt.relative_gap or 0.0) for pt in with_gap],
        color="tab:green",
        label="relative gap",
    )
    if target_gap is not None:
        label = f"stop rule: {100.0 * target_gap:g} % gap"
        gaps.axhline(100.0 * target_gap, color="tab:red", linestyle="--", label=label)
        gaps.legend(loc="best")
    gaps.set_ylabel("relative gap (%)")
    gaps.set_xlabel("seconds since the first progress message")
    gaps.set_ylim(bottom=0.0)
    gaps.grid(True, alpha=0.3)
    if not points:
        values.text(0.5, 0.5, "no progress recorded", ha="center", transform=values.transAxes)
    figure.suptitle(title or "Solver progress")


def render_progress_png(
    series: Mapping[str, Any] | ProgressSeries,
    *,
    title: str | None = None,
    target_gap: float | None = None,
) -> bytes:
    """The picture as PNG bytes; ``target_gap`` (0.01 is 1 %) draws the stop rule's line.

    Raises :class:`~airflow_insight.exceptions.ConfigurationError` naming the ``plot`` extra
    when matplotlib is missing.
    """
    figure = _figure_class()(figsize=(8.0, 5.5), dpi=100, layout="constrained")
    _draw(figure, _points(series), title, target_gap)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_progress_png(
    series: Mapping[str, Any] | ProgressSeries,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    target_gap: float | None = None,
) -> Path:
    """Write the picture to ``path`` (parent folders are created) and return the path."""
    image = render_progress_png(series, title=title, target_gap=target_gap)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees half a picture.
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(image)
    partial.replace(target)
    return target
