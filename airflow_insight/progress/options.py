"""What a task asks for: :class:`ProgressOptions`, the callbacks it merges into the request.

The operator builds the options once from its arguments (``solver_progress``, ``stop_rules``),
so a wrong argument fails at once as a ``ConfigurationError``; the options merge the progress
callbacks into ``solver.callbacks`` (:func:`with_progress_callbacks`), make one
:class:`~airflow_insight.progress.handler.SolverProgress` per followed job, and travel to the
trigger as JSON. They fit the core's
:class:`~airflow_insight.protocol.request.SolverCallbacks`, so the core builds the request
without knowing this feature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress.handler import SolverProgress
from airflow_insight.progress.rules import (
    StopAtGap,
    StopRule,
    stop_rules_from_json,
    stop_rules_to_json,
)
from airflow_insight.progress.series import checked_series_limit

if TYPE_CHECKING:
    from airflow_insight.protocol.request import SolverCallbacks

# solver.callbacks names accepted by Insight (§B4.7.3), spelled as on the wire.
GAPNOTIFY = "GAPNOTIFY"
INTSOL = "INTSOL"
GLOBALLOG = "GLOBALLOG"
LPLOG = "LPLOG"
BARLOG = "BARLOG"
CUTLOG = "CUTLOG"
CALLBACKS = frozenset({GAPNOTIFY, INTSOL, GLOBALLOG, LPLOG, BARLOG, CUTLOG})

# Why these: INTSOL fires once per new incumbent and GLOBALLOG once per MIP log line (every
# MIPLOG nodes), so a MIP's progress costs a handful of round trips a second at most. LPLOG and
# BARLOG give the LP's progress; CUTLOG adds nothing a record shows, GAPNOTIFY only serves a gap
# rule (see with_progress_callbacks). Every callback pauses the solve until its answer arrives,
# so fewer is better.
_MIP_CALLBACKS = (INTSOL, GLOBALLOG)
_LP_CALLBACKS = (LPLOG, BARLOG)
# GAPNOTIFY fires when the relative gap reaches this control's value (Xpress; never without it).
_GAP_NOTIFY_CONTROL = "XPRS_MIPRELGAPNOTIFY"


def progress_callbacks(problem_type: str | None = None) -> tuple[str, ...]:
    """The ``solver.callbacks`` that report progress for a ``solver.problemType``.

    ``MIP``: incumbents and the MIP log; ``LP``: the simplex and barrier logs; unknown (the solver
    decides): all four, since only the ones that apply ever fire.
    """
    kind = (problem_type or "").upper()
    if kind == "MIP":
        return _MIP_CALLBACKS
    if kind == "LP":
        return _LP_CALLBACKS
    return _MIP_CALLBACKS + _LP_CALLBACKS


def with_progress_callbacks(
    job_request: Mapping[str, Any],
    callbacks: Iterable[str] | None = None,
    *,
    stop_rules: Iterable[StopRule | Mapping[str, Any]] | None = (),
) -> dict[str, Any]:
    """A copy of ``job_request`` whose ``solver.callbacks`` also list the progress callbacks.

    ``callbacks`` None picks them from ``solver.problemType`` (:func:`progress_callbacks`); then
    a :class:`StopAtGap` rule on a problem that may be a MIP also asks for ``GAPNOTIFY`` with
    ``XPRS_MIPRELGAPNOTIFY`` at the rule's gap (unless the request sets that control), so the
    solver calls back the moment the gap crosses it instead of at its next log line. Callbacks
    already in the request are kept, in their order; names are checked.
    """
    solver = job_request.get("solver")
    if solver is None:
        solver = {}
    if not isinstance(solver, Mapping):
        raise ConfigurationError("job_request['solver'] must be an object to ask for progress")
    problem_type = solver.get("problemType")
    kind = problem_type if isinstance(problem_type, str) else None
    wanted = progress_callbacks(kind) if callbacks is None else tuple(callbacks)
    existing = solver.get("callbacks") or []
    if isinstance(existing, str) or not isinstance(existing, Sequence):
        raise ConfigurationError("job_request['solver']['callbacks'] must be a list of names")
    controls = solver.get("controls") or {}
    if not isinstance(controls, Mapping):
        raise ConfigurationError("job_request['solver']['controls'] must be an object")
    gaps = [
        rule.relative_gap
        for rule in stop_rules_from_json(stop_rules)
        if isinstance(rule, StopAtGap)
    ]
    if callbacks is None and gaps and (kind or "").upper() != "LP":
        wanted = (*wanted, GAPNOTIFY)
        if _GAP_NOTIFY_CONTROL not in controls:
            controls = {**controls, _GAP_NOTIFY_CONTROL: max(gaps)}
    merged = list(dict.fromkeys([*existing, *wanted]))
    if unknown := [name for name in merged if name not in CALLBACKS]:
        known = ", ".join(sorted(CALLBACKS))
        raise ConfigurationError(f"unknown solver callbacks {unknown}: use {known}")
    updated = {**solver, "callbacks": merged}
    if controls:
        updated["controls"] = dict(controls)
    return {**job_request, "solver": updated}


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressOptions:
    """What a task asked for: progress callbacks and stop rules; JSON-safe for trigger kwargs.

    The operator builds it once from its arguments (:meth:`from_arguments`), merges it into the
    job request (:meth:`job_request`), makes one handler per followed job (:meth:`handler`), and
    hands :meth:`to_json` to the trigger, which rebuilds it with :meth:`from_json`.
    """

    #: The ``solver.callbacks`` to add; None picks them from the request (progress_callbacks).
    callbacks: tuple[str, ...] | None = None
    stop_rules: tuple[StopRule, ...] = ()
    series_limit: int = 200

    @classmethod
    def from_arguments(
        cls,
        solver_progress: bool | Iterable[str] = False,
        stop_rules: Iterable[StopRule | Mapping[str, Any]] | None = None,
        *,
        series_limit: int = 200,
    ) -> ProgressOptions | None:
        """From operator arguments: ``solver_progress`` True (callbacks chosen for the problem),
        a list of callback names, or False; None when progress was not asked for.

        Stop rules need the callbacks, so rules without ``solver_progress`` are a
        :class:`ConfigurationError` rather than rules that silently never fire.
        """
        rules = stop_rules_from_json(stop_rules)
        if solver_progress is False or solver_progress is None:
            if rules:
                raise ConfigurationError(
                    "stop_rules need solver progress: pass solver_progress=True (or a list of "
                    "solver callbacks) with them"
                )
            return None
        if solver_progress is True:
            callbacks = None
        elif isinstance(solver_progress, str) or not isinstance(solver_progress, Iterable):
            raise ConfigurationError(
                f"solver_progress must be True, False or a list of solver callbacks, "
                f"not {solver_progress!r}"
            )
        else:
            callbacks = tuple(solver_progress)
            if unknown := [name for name in callbacks if name not in CALLBACKS]:
                known = ", ".join(sorted(CALLBACKS))
                raise ConfigurationError(f"unknown solver callbacks {unknown}: use {known}")
        return cls(callbacks, rules, checked_series_limit(series_limit))

    def job_request(self, job_request: Mapping[str, Any]) -> dict[str, Any]:
        """``job_request`` with the progress callbacks (and gap notification) merged in."""
        return with_progress_callbacks(job_request, self.callbacks, stop_rules=self.stop_rules)

    def handler(self) -> SolverProgress:
        """A fresh handler for one followed job."""
        return SolverProgress(self.stop_rules, series_limit=self.series_limit)

    def to_json(self) -> dict[str, Any]:
        """The JSON-safe form (trigger kwargs)."""
        return {
            "callbacks": None if self.callbacks is None else list(self.callbacks),
            "stop_rules": stop_rules_to_json(self.stop_rules),
            "series_limit": self.series_limit,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ProgressOptions:
        """Rebuild from :meth:`to_json`'s form."""
        callbacks = document.get("callbacks")
        options = cls.from_arguments(
            True if callbacks is None else callbacks,
            document.get("stop_rules"),
            series_limit=int(document.get("series_limit", 200)),
        )
        assert options is not None  # progress was asked for
        return options


if TYPE_CHECKING:
    # mypy proves here that the options fit the core's request interface.
    _fits_the_request: SolverCallbacks = ProgressOptions()
