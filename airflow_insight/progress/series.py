"""The solve's progress over time: a bounded :class:`ProgressSeries` and its JSON form.

The series feeds the task's XCom result and the progress picture (:mod:`airflow_insight.
progress_plot`). It costs constant memory on a solve of any length: when full it thins itself,
keeping the first and last point and the steps of the incumbent curve first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress.records import ProgressRecord, finite_number


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressPoint:
    """One point of the series: seconds since the first record, the figures then, and the
    solver's own elapsed time (its ``TIME`` attribute), which the picture's time axis uses."""

    time: float
    best_solution: float | None
    best_bound: float | None
    relative_gap: float | None
    solver_time: float | None = None


SERIES_FIELDS = ("time", "best_solution", "best_bound", "relative_gap", "solver_time")


def downsample(points: Sequence[ProgressPoint], limit: int) -> list[ProgressPoint]:
    """At most ``limit`` (>= 2) of ``points``, in order.

    Kept first: the first and last point, then the points where the best solution changed (the
    steps of the incumbent curve), then points evenly spread over the rest.
    """
    if len(points) <= limit:
        return list(points)
    last = len(points) - 1
    steps = [
        index
        for index in range(1, last)
        if points[index].best_solution != points[index - 1].best_solution
    ]
    budget = limit - 2
    chosen = set(_spread(steps, budget)) | {0, last}
    others = [index for index in range(1, last) if index not in chosen]
    chosen.update(_spread(others, limit - len(chosen)))
    return [points[index] for index in sorted(chosen)]


def _spread(indices: Sequence[int], count: int) -> list[int]:
    """``count`` of ``indices``, evenly spaced (all of them when there are few enough)."""
    if count <= 0:
        return []
    if len(indices) <= count:
        return list(indices)
    step = len(indices) / count
    return [indices[int(i * step)] for i in range(count)]


def checked_series_limit(limit: int) -> int:
    """``limit`` when it is a whole number of at least 2; a ConfigurationError otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
        raise ConfigurationError(f"the progress series needs a limit of at least 2, not {limit!r}")
    return limit


class ProgressSeries:
    """The solve's progress over time, bounded in memory and in its XCom form.

    Holds at most ``4 * limit`` points, thinning to ``2 * limit`` when full, so a solve of any
    length costs constant memory; :meth:`to_json` gives at most ``limit`` points.
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = checked_series_limit(limit)
        self._points: list[ProgressPoint] = []
        self._origin: float | None = None
        self.records_seen = 0

    def add(self, record: ProgressRecord) -> None:
        """Add the figures of one record (records without a solution or bound add nothing)."""
        self.records_seen += 1
        if record.best_solution is None and record.best_bound is None:
            return
        if self._origin is None:
            self._origin = record.time
        point = ProgressPoint(
            time=round(record.time - self._origin, 3),
            best_solution=record.best_solution,
            best_bound=record.best_bound,
            relative_gap=record.relative_gap,
            solver_time=record.elapsed_seconds,
        )
        self._points.append(point)
        if len(self._points) > 4 * self.limit:
            self._points = downsample(self._points, 2 * self.limit)

    @property
    def points(self) -> tuple[ProgressPoint, ...]:
        """Every point held now (at most ``4 * limit``)."""
        return tuple(self._points)

    def to_json(self) -> dict[str, Any]:
        """``{"fields": [...], "points": [[time, best solution, best bound, gap, solver
        time], ...]}``.

        ``time`` is seconds since the first point as received, ``solver_time`` the solver's own
        elapsed seconds; missing figures are null.
        """
        kept = downsample(self._points, self.limit)
        return {
            "fields": list(SERIES_FIELDS),
            "points": [
                [p.time, p.best_solution, p.best_bound, p.relative_gap, p.solver_time] for p in kept
            ],
        }


def series_points(document: Mapping[str, Any]) -> list[ProgressPoint]:
    """The points of a series' JSON form (see :meth:`ProgressSeries.to_json`)."""
    fields = list(document.get("fields") or SERIES_FIELDS)
    rows = document.get("points") or []
    points = []
    for row in rows:
        values = dict(zip(fields, row, strict=False))
        time = finite_number(values.get("time"))
        if time is None:
            continue
        points.append(
            ProgressPoint(
                time=time,
                best_solution=finite_number(values.get("best_solution")),
                best_bound=finite_number(values.get("best_bound")),
                relative_gap=finite_number(values.get("relative_gap")),
                solver_time=finite_number(values.get("solver_time")),
            )
        )
    return points
