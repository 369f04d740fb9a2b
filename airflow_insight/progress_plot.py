"""The solver-progress picture: best solution, best bound and relative gap over time, as a PNG.

Needs the optional ``plot`` extra (``pip install 'airflow-insight[plot]'``, which brings
matplotlib). Drawing uses matplotlib's Agg canvas directly, never ``pyplot``: no global backend
is switched, no window can open, and two tasks drawing at once in one worker do not share state.

Public API::

    write_progress_png(series, path, *, title=None, target_gap=None, stopped_by=None) -> Path
    render_progress_png(series, *, title=None, target_gap=None, stopped_by=None) -> bytes
    picture_layout(series, *, target_gap=None, stopped_by=None) -> PictureLayout  # no matplotlib

``series`` is the JSON form of :class:`~airflow_insight.progress.ProgressSeries` (what
the task's XCom result carries under ``progress.series``) or the series itself; ``stopped_by`` is
the result's ``progress.stopped_by`` (the rule that stopped the solve, and when).

The picture reads the same for a 2-second solve and a 2-hour one: the solver's own clock on the
time axis, steps rather than slopes, no flattening by a trivial first bound, and the stop marked
(see ``docs/design.md#the-solver-progress-picture``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress import (
    ProgressPoint,
    ProgressSeries,
    gap_text,
    objective_text,
    series_points,
)
from airflow_insight.storage import is_object_storage_url, write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_MISSING_EXTRA = (
    "Drawing the solver-progress picture needs matplotlib, which is not installed: install "
    "the 'plot' extra (pip install 'airflow-insight[plot]')"
)

# A gap this close to 100 % only says the bound is still the trivial one (0, or the LP's
# sign-opposite value): such bounds do not set the objective axis.
_TRIVIAL_GAP = 0.999
# (largest time in seconds, divisor, unit) for the time axis: short numbers at any length.
_TIME_UNITS = ((180.0, 1.0, "s"), (100.0 * 60.0, 60.0, "min"), (float("inf"), 3600.0, "h"))
_BEST, _BOUND, _GAP, _STOP = "tab:blue", "tab:orange", "tab:green", "tab:red"


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


@dataclasses.dataclass(frozen=True)
class Curve:
    """A step curve: each value held from its x to the next one, the last to the end."""

    xs: list[float]
    ys: list[float]


@dataclasses.dataclass(frozen=True)
class PictureLayout:
    """What the picture shows, computed without matplotlib (see
    ``docs/design.md#the-solver-progress-picture``)."""

    #: The time axis: "s", "min" or "h", its label, and whether it is the solver's clock.
    unit: str
    time_label: str
    solver_clock: bool
    best: Curve
    bound: Curve
    #: The gap in per cent, a gap of 0 raised to the floor of the log axis.
    gap: Curve
    #: The objective axis' range; None when there is no figure at all.
    objective_limits: tuple[float, float] | None
    #: ("best solution" or "best bound", x, value) of the figures outside the objective axis
    #: (marked at its edge).
    clipped: list[tuple[str, float, float]]
    gap_limits: tuple[float, float]
    #: Where the gap first reached 0 (marked "optimal"), if it did.
    gap_zero_at: float | None
    target_gap_percent: float | None
    #: Where and why a stop rule stopped the solve; None when none did.
    stop_at: float | None
    stop_label: str | None
    subtitle: str


def picture_layout(
    series: Mapping[str, Any] | ProgressSeries,
    *,
    target_gap: float | None = None,
    stopped_by: Mapping[str, Any] | None = None,
) -> PictureLayout:
    """The picture's content for a series (the same arguments as :func:`render_progress_png`)."""
    points = _points(series)
    line = _Timeline(points, stopped_by)
    bests = [pt.best_solution for pt in points]
    bounds = [pt.best_bound for pt in points]
    limits = _objective_limits(points)
    clipped = []
    if limits is not None:
        low, high = limits
        clipped = [
            (name, x, y)
            for name, values in (("best solution", bests), ("best bound", bounds))
            for x, y in zip(line.xs, values, strict=True)
            if y is not None and not low <= y <= high
        ]
    gaps = [None if pt.relative_gap is None else 100.0 * pt.relative_gap for pt in points]
    target = None if target_gap is None or target_gap <= 0.0 else 100.0 * target_gap
    gap_limits = _gap_limits(gaps, target)
    zero_at = next((x for x, gap in zip(line.xs, gaps, strict=True) if gap == 0.0), None)
    return PictureLayout(
        unit=line.unit,
        time_label=line.label(),
        solver_clock=line.solver_clock,
        best=_steps(line.xs, bests, line.end),
        bound=_steps(line.xs, bounds, line.end),
        gap=_steps(
            line.xs, [None if gap is None else max(gap, gap_limits[0]) for gap in gaps], line.end
        ),
        objective_limits=limits,
        clipped=clipped,
        gap_limits=gap_limits,
        gap_zero_at=zero_at,
        target_gap_percent=target,
        stop_at=line.stop,
        stop_label=None if stopped_by is None else f"stopped: {_rule_text(stopped_by)}",
        subtitle=_subtitle(points, line, clipped, limits),
    )


class _Timeline:
    """Where each point and the stop go on the time axis, in the unit that suits the solve."""

    def __init__(
        self, points: Sequence[ProgressPoint], stopped_by: Mapping[str, Any] | None
    ) -> None:
        self.solver_clock = bool(points) and all(pt.solver_time is not None for pt in points)
        raw = [self._seconds(pt) for pt in points]
        stop = self._stop_seconds(stopped_by, raw)
        end = max([*raw, stop or 0.0], default=0.0)
        _, self.divisor, self.unit = next(unit for unit in _TIME_UNITS if end <= unit[0])
        self.xs = [seconds / self.divisor for seconds in raw]
        self.end = end / self.divisor
        #: Where the solve was stopped on the axis; None when no rule stopped it.
        self.stop = None if stop is None else stop / self.divisor

    def _stop_seconds(
        self, stopped_by: Mapping[str, Any] | None, raw: Sequence[float]
    ) -> float | None:
        if stopped_by is None or not raw:
            return None
        solver_time = stopped_by.get("solver_time")
        if self.solver_clock and isinstance(solver_time, int | float):
            return float(solver_time)
        return raw[-1]  # the stop answered the last message recorded

    def _seconds(self, point: ProgressPoint) -> float:
        if self.solver_clock and point.solver_time is not None:
            return point.solver_time
        return point.time

    def label(self) -> str:
        """The axis label."""
        if self.solver_clock:
            return f"solver time ({self.unit})"
        return f"{self.unit} since the first progress message (no solver time reported)"


def _steps(xs: Sequence[float], ys: Sequence[float | None], end: float) -> Curve:
    """The points with a value, held to ``end`` so the last step has its length."""
    kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    if kept and end > kept[-1][0]:
        kept.append((end, kept[-1][1]))
    return Curve([x for x, _ in kept], [y for _, y in kept])


def _objective_limits(points: Sequence[ProgressPoint]) -> tuple[float, float] | None:
    """The objective axis, with a margin: the figures from where both the incumbent and the
    bound mean something (gap under 100 %), else all of them; None when there are none."""
    meaningful = [pt for pt in points if pt.relative_gap is not None]
    meaningful = [pt for pt in meaningful if (pt.relative_gap or 0.0) < _TRIVIAL_GAP]
    values = [
        value
        for pt in (meaningful or points)
        for value in (pt.best_solution, pt.best_bound)
        if value is not None
    ]
    if not values:
        return None
    low, high = min(values), max(values)
    margin = 0.08 * (high - low) or 0.01 * abs(high) or 1.0
    return low - margin, high + margin


def _gap_limits(gaps: Sequence[float | None], target: float | None) -> tuple[float, float]:
    """The log gap axis in per cent: a third below the smallest gap above 0 (or the target),
    to a little above the largest."""
    known = [gap for gap in gaps if gap is not None and gap > 0.0]
    if target is not None:
        known.append(target)
    return min(known, default=1.0) / 3.0, max(known, default=100.0) * 1.6


def _rule_text(stopped_by: Mapping[str, Any]) -> str:
    """A short label for the rule that stopped the solve."""
    rule = stopped_by.get("rule") or {}
    kind = rule.get("rule")
    if kind == "relative_gap":
        return f"gap ≤ {100.0 * float(rule['relative_gap']):g} %"
    if kind == "no_improvement":
        return f"no better solution for {float(rule['seconds']):g} s"
    if kind == "objective":
        return f"objective reached {objective_text(float(rule['value']))}"
    return str(kind or "a stop rule")


def _subtitle(
    points: Sequence[ProgressPoint],
    line: _Timeline,
    clipped: Sequence[tuple[str, float, float]],
    limits: tuple[float, float] | None,
) -> str:
    """The last figures, and what the triangles at the axis edges stand for (a note there would
    cover the curves)."""
    if not points:
        return ""
    last = points[-1]
    text = (
        f"best {objective_text(last.best_solution)} · bound {objective_text(last.best_bound)}"
        f" · gap {gap_text(last.relative_gap)} · at {line.xs[-1]:.3g} {line.unit}"
    )
    notes = []
    for name in ("best solution", "best bound"):
        first = next((value for each, _, value in clipped if each == name), None)
        if first is not None and limits is not None:
            marker = "▼" if first < limits[0] else "▲"
            notes.append(f"{marker} {name} {objective_text(first)}")
    return text + (f"   (off the scale: {', '.join(notes)})" if notes else "")


# --------------------------------------------------------------------------- drawing


def _mark_clipped(axes: Axes, layout: PictureLayout) -> None:
    """Triangles at the axis edge where a curve leaves the scale (the subtitle says which)."""
    if layout.objective_limits is None:
        return
    low, _ = layout.objective_limits
    edge = axes.get_xaxis_transform()  # x in data, y in axes fraction
    for name, color in (("best solution", _BEST), ("best bound", _BOUND)):
        off = [(x, y) for each, x, y in layout.clipped if each == name]
        below = [(x, y) for x, y in off if y < low]
        above = [(x, y) for x, y in off if y >= low]
        for clipped, y_edge, marker in ((below, 0.0, "v"), (above, 1.0, "^")):
            if not clipped:
                continue
            xs = [x for x, _ in clipped]
            axes.plot(
                xs,
                [y_edge] * len(xs),
                marker=marker,
                linestyle="none",
                color=color,
                transform=edge,
                clip_on=False,
            )


def _draw_objective(axes: Axes, layout: PictureLayout) -> None:
    for curve, color, name in (
        (layout.best, _BEST, "best solution"),
        (layout.bound, _BOUND, "best bound"),
    ):
        axes.step(curve.xs, curve.ys, where="post", color=color, label=name)
    if layout.objective_limits is not None:
        axes.set_ylim(*layout.objective_limits)
    _mark_clipped(axes, layout)
    axes.set_ylabel("objective")
    axes.grid(True, alpha=0.3)


def _draw_gap(axes: Axes, layout: PictureLayout) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.step(layout.gap.xs, layout.gap.ys, where="post", color=_GAP, label="relative gap")
    floor, top = layout.gap_limits
    if layout.gap_zero_at is not None:
        axes.annotate(
            "gap 0 (optimal)", (layout.gap_zero_at, floor), fontsize=8, color=_GAP, va="bottom"
        )
    if layout.target_gap_percent is not None:
        label = f"stop rule: gap ≤ {layout.target_gap_percent:g} %"
        axes.axhline(
            layout.target_gap_percent, color=_STOP, linestyle="--", linewidth=1.0, label=label
        )
    axes.set_yscale("log")
    axes.set_ylim(floor, top)
    # 1-2-5 ticks: a log axis over one or two decades would otherwise show one label.
    axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g} %"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_ylabel("relative gap (log)")
    axes.set_xlabel(layout.time_label)
    axes.grid(True, which="both", alpha=0.3)


def _draw_stop(axes: Sequence[Axes], layout: PictureLayout) -> None:
    if layout.stop_at is None:
        return
    for each in axes:
        each.axvline(layout.stop_at, color=_STOP, linestyle=":", linewidth=1.5)
    axes[0].text(
        layout.stop_at,
        0.98,
        f"{layout.stop_label} ",
        transform=axes[0].get_xaxis_transform(),
        color=_STOP,
        fontsize=9,
        ha="right",
        va="top",
    )


def _draw(figure: Figure, layout: PictureLayout, title: str | None, empty: bool) -> None:
    values, gaps = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    _draw_objective(values, layout)
    _draw_gap(gaps, layout)
    _draw_stop((values, gaps), layout)
    values.legend(loc="best", fontsize=9)
    if layout.target_gap_percent is not None:
        gaps.legend(loc="upper right", fontsize=9)
    if empty:
        values.text(0.5, 0.5, "no progress recorded", ha="center", transform=values.transAxes)
    values.set_title(layout.subtitle, fontsize=9)
    figure.suptitle(title or "Solver progress")


def render_progress_png(
    series: Mapping[str, Any] | ProgressSeries,
    *,
    title: str | None = None,
    target_gap: float | None = None,
    stopped_by: Mapping[str, Any] | None = None,
) -> bytes:
    """The picture as PNG bytes; ``target_gap`` (0.01 is 1 %) draws the stop rule's line,
    ``stopped_by`` (the result's ``progress.stopped_by``) marks when and why the solve stopped.

    Raises :class:`~airflow_insight.exceptions.ConfigurationError` naming the ``plot`` extra
    when matplotlib is missing.
    """
    figure = _figure_class()(figsize=(8.0, 5.5), dpi=100, layout="constrained")
    layout = picture_layout(series, target_gap=target_gap, stopped_by=stopped_by)
    _draw(figure, layout, title, empty=not layout.best.xs and not layout.bound.xs)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_progress_png(
    series: Mapping[str, Any] | ProgressSeries,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    target_gap: float | None = None,
    stopped_by: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write the picture to ``path`` (parent folders are created) and return the path; an
    object-storage URL (``s3://``, ``file://``...) is written there and returned as it is."""
    image = render_progress_png(series, title=title, target_gap=target_gap, stopped_by=stopped_by)
    if is_object_storage_url(path):
        return write_bytes(str(path), image)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees half a picture.
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(image)
    partial.replace(target)
    return target
