"""What one solver callback says: :class:`ProgressRecord`, read from an ``APP_MESSAGE``.

:func:`read_progress` turns a message's solver attributes into a record; :func:`objective_text`
and :func:`gap_text` print its figures the way every log line and picture shows them.

Decisions where the reference is silent (§A10, §B4.7.3):

* **Attribute names.** The reference shows ``{"attributes": {"NAME": {"key", "name", "value"}}}``
  without naming the attributes. Names are matched case-insensitively, with or without the
  ``XPRS_`` prefix, and also read from a bare ``{"NAME": value}`` map or a list of
  ``{"name", "value"}`` entries. Values may be numbers or numeric strings. Xpress reports
  "no solution yet" / "no bound yet" as ±1e40 (``XPRS_PLUSINFINITY``): read as missing.
* **Relative gap** is Xpress's: ``|best solution - best bound| / max(|best solution|, |best
  bound|)``, 0 when both are 0, missing without an incumbent or a bound.
* **Log lines** read ``GLOBALLOG  best 5680  bound 5623.12  gap 1.00%  nodes 1,831  sols 16
  t 29.1s`` in fixed-width columns (the solver's own time, ``TIME``); the job is named once, by
  :class:`~airflow_insight.progress.events.ProgressStarted`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from airflow_insight.protocol import messages as m

# Xpress reports a missing objective or bound as +-XPRS_PLUSINFINITY.
_INFINITY = 1e40


def finite_number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; anything else is missing."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _attribute_key(name: str) -> str:
    key = name.strip().upper()
    return key.removeprefix("XPRS_")


def _attribute_entries(raw: Any) -> Iterable[tuple[str, Any]]:
    """(name, value) pairs from any of the attribute shapes the module docstring lists."""
    if isinstance(raw, Mapping):
        for name, entry in raw.items():
            if isinstance(entry, Mapping):
                label = entry.get("name", name)
                yield (label if isinstance(label, str) else str(name)), entry.get("value")
            else:
                yield str(name), entry
    elif isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                yield entry["name"], entry.get("value")


def solver_attributes(app_message: Mapping[str, Any] | None) -> dict[str, Any]:
    """The solver attributes of an ``appMessage`` body, keyed by upper-case name without
    ``XPRS_``; empty when there are none."""
    if not isinstance(app_message, Mapping):
        return {}
    raw = app_message.get("attributes")
    return {_attribute_key(name): value for name, value in _attribute_entries(raw)}


def relative_gap(best_solution: float | None, best_bound: float | None) -> float | None:
    """Xpress's relative MIP gap, or None when either side is missing."""
    if best_solution is None or best_bound is None:
        return None
    scale = max(abs(best_solution), abs(best_bound))
    if scale == 0.0:
        return 0.0
    return abs(best_solution - best_bound) / scale


Sense = Literal["minimize", "maximize"]


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressRecord:
    """What one ``APP_MESSAGE`` says about the solve; every solver figure may be missing.

    ``time`` is when the message was received, in the driver's clock; ``elapsed_seconds`` is the
    solver's own ``TIME`` attribute.
    """

    job_id: str
    app_message_id: str
    callback: str | None
    time: float
    best_solution: float | None = None
    best_bound: float | None = None
    relative_gap: float | None = None
    nodes: int | None = None
    solutions_found: int | None = None
    elapsed_seconds: float | None = None
    lp_objective: float | None = None
    sense: Sense | None = None
    problem_name: str | None = None
    solution_file: str | None = None

    @property
    def has_solver_figures(self) -> bool:
        """True when the message carried at least one figure a record shows."""
        figures = (self.best_solution, self.best_bound, self.nodes, self.solutions_found)
        return any(value is not None for value in (*figures, self.elapsed_seconds))

    def describe(self) -> str:
        """One compact log line with fixed columns; the job id is said once, by
        :class:`~airflow_insight.progress.events.ProgressStarted`, so the figures stay in view on
        a narrow log page."""
        columns = [
            f"{self.callback or '?':<9}",
            f"best {objective_text(self.best_solution):>10}",
            f"bound {objective_text(self.best_bound):>10}",
            f"gap {gap_text(self.relative_gap):>7}",
            f"nodes {_thousands(self.nodes):>9}",
            f"sols {_thousands(self.solutions_found):>3}",
            f"t {_seconds(self.elapsed_seconds):>7}",
        ]
        if self.lp_objective is not None and self.best_solution is None and self.best_bound is None:
            # An LP's progress (LPLOG, BARLOG); in a MIP it is only the current node's LP.
            columns.append(f"LP objective {objective_text(self.lp_objective)}")
        return "  ".join(columns)

    def shown_figures(self) -> tuple[str, str]:
        """What makes a record worth a log line when it reads differently from the last line's:
        the best solution, and the gap as :meth:`describe` prints it (0.01 % steps), or the bound
        while there is no gap yet. A bound that creeps without moving the printed gap is not
        news: on a long solve it would give a line per MIP log line."""
        if self.relative_gap is None:
            return objective_text(self.best_solution), objective_text(self.best_bound)
        return objective_text(self.best_solution), gap_text(self.relative_gap)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy."""
        return dataclasses.asdict(self)


#: What a column shows for a figure the solver did not report (yet).
MISSING = "-"


def objective_text(value: float | None) -> str:
    """An objective value as records show it: to two decimals at most (trailing zeros
    dropped); small ones to six significant digits, so a 0.0042 objective does not read as 0."""
    if value is None:
        return MISSING
    if value != 0.0 and abs(value) < 1.0:
        return f"{value:.6g}"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def gap_text(gap: float | None) -> str:
    """A relative gap as records show it: a percentage to two decimals (1.00%)."""
    if gap is None:
        return MISSING
    text = f"{gap:.2%}"
    if gap > 0.0 and text == "0.00%":
        return f"{100 * gap:.0e}%"  # below 0.005 %: "4e-03%" rather than a false 0.00 %
    return text


def _thousands(count: int | None) -> str:
    return MISSING if count is None else f"{count:,}"


def _seconds(seconds: float | None) -> str:
    return MISSING if seconds is None else f"{seconds:.1f}s"


def _bounded(value: Any) -> float | None:
    number = finite_number(value)
    return None if number is None or abs(number) >= _INFINITY else number


def _count(value: Any) -> int | None:
    number = finite_number(value)
    if number is None or number < 0 or not number.is_integer():
        return None
    return int(number)


def _sense(value: Any) -> Sense | None:
    number = finite_number(value)
    if number is None or number == 0:
        return None
    return "minimize" if number > 0 else "maximize"


def read_progress(message: m.AppMessage, now: float) -> ProgressRecord | None:
    """The record an ``APP_MESSAGE`` carries, or None when it has no solver figure at all."""
    attributes = solver_attributes(message.app_message)
    solutions = _count(attributes.get("MIPSOLS"))
    best = _bounded(attributes.get("MIPBESTOBJVAL"))
    if solutions == 0:
        best = None  # Xpress keeps a stale or sentinel value there before the first incumbent.
    bound = _bounded(attributes.get("BESTBOUND"))
    lp_objective = _bounded(attributes.get("LPOBJVAL"))
    if lp_objective is None:
        lp_objective = _bounded(attributes.get("BARPRIMALOBJ"))
    problem = message.app_message.get("problemName") if message.app_message else None
    record = ProgressRecord(
        job_id=message.compute_job_id,
        app_message_id=message.app_message_id,
        callback=message.app_message_type,
        time=now,
        best_solution=best,
        best_bound=bound,
        relative_gap=relative_gap(best, bound),
        nodes=_count(attributes.get("NODES")),
        solutions_found=solutions,
        elapsed_seconds=finite_number(attributes.get("TIME")),
        lp_objective=lp_objective,
        sense=_sense(attributes.get("OBJSENSE")),
        problem_name=problem if isinstance(problem, str) else None,
        solution_file=message.app_message_file,
    )
    if not record.has_solver_figures and record.lp_objective is None:
        return None
    return record
