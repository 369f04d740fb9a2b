"""Live solver progress from ``APP_MESSAGE`` callbacks, sans I/O (reference §A10, §B4.7.3).

A SOLVER job whose request lists ``solver.callbacks`` pauses the solve at each callback point and
sends ``APP_MESSAGE`` with the solver's attributes; the client must answer every one. This module
turns those messages into :class:`ProgressRecord` values, keeps a bounded :class:`ProgressSeries`
for the task's XCom result, evaluates declarative stop rules, and answers through
:class:`SolverProgress`, the per-job handler the core calls the moment a message is decoded.

No I/O, no clock of its own (the core passes ``now`` in the driver's clock, e.g.
``time.monotonic()``), no Airflow.

Public API::

    SolverProgress(stop_rules=(), *, series_limit=200, heartbeat_seconds=30.0)
        .answer(message, now) -> (AppMessageResponse, events)   # the AppMessageHandler of a job
        .series -> ProgressSeries; .last_record; .stopped_by -> StopDecision | None;
        .latest_solution_file (the last INTSOL's appMessageFile)
        .summary() -> JSON-safe dict for the XCom result
    read_progress(message, now) -> ProgressRecord | None
    objective_text(value) -> str;  gap_text(relative_gap) -> str     # as the records show them
    StopAtGap(relative_gap) | StopAfterNoImprovement(seconds) | StopAtObjective(value, sense)
    stop_rules_from_json(items) -> tuple[StopRule, ...];  stop_rules_to_json(rules) -> list[dict]
    progress_callbacks(problem_type) -> tuple[str, ...]
    with_progress_callbacks(job_request, callbacks=None, *, stop_rules=()) -> dict   # a new request
    ProgressOptions.from_arguments(solver_progress, stop_rules) -> ProgressOptions | None
        .job_request(request); .handler() -> SolverProgress; .to_json() / from_json(kwargs)

Decisions where the reference is silent:

* **Attribute names.** The reference shows ``{"attributes": {"NAME": {"key", "name", "value"}}}``
  without naming the attributes. Names are matched case-insensitively, with or without the
  ``XPRS_`` prefix, and also read from a bare ``{"NAME": value}`` map or a list of
  ``{"name", "value"}`` entries. Values may be numbers or numeric strings. Xpress reports
  "no solution yet" / "no bound yet" as ±1e40 (``XPRS_PLUSINFINITY``): read as missing.
* **Relative gap** is Xpress's: ``|best solution - best bound| / max(|best solution|, |best
  bound|)``, 0 when both are 0, missing without an incumbent or a bound.
* **Bad input is survived.** A message without usable attributes or with an unknown
  ``appMessageType`` still gets its answer; it yields a partial record or none, and an event
  saying why. Nothing here raises on server input.
* **Log lines.** The first record of a job is preceded by :class:`ProgressStarted`, which names
  the job once; each record then reads ``GLOBALLOG  best 5680  bound 5623.12  gap 1.00%  nodes
  1,831  sols 16  t 29.1s`` in fixed-width columns (the solver's own time, ``TIME``). A record
  whose best solution and gap read as on the last line shown (an INTSOL is followed at once by a
  GLOBALLOG with the same figures; a bound that creeps by less than the printed gap shows) is
  logged at DEBUG unless ``heartbeat_seconds`` passed since that line: the task log gets one line
  per change worth seeing. Before the first incumbent the bound stands in for the gap.
* **Re-sent messages** (the server re-sends unanswered ones after a reconnect, §B4.6) get the same
  kind of answer and are recorded once (by ``appMessageId``).
* **A stop is final.** Once a rule fired, every later message of the job is answered
  ``interruptSolve: true`` as well: callbacks that were already on their way must not resume a
  solve the user asked to stop, and an interrupted remote solve cannot be continued anyway.
* **"No improvement" counts in the driver's clock** from the latest better incumbent; before the
  first incumbent it never fires (stopping then would leave no solution at all: use the solver's
  own ``XPRS_MAXTIME`` or the task's timeout for that).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol import messages as m

if TYPE_CHECKING:
    # Only for the conformance check below: appmessages -> events -> this module.
    from airflow_insight.protocol.appmessages import AppMessageHandler

#: Logger for progress records, apart from the run log (``insight.run_log``).
PROGRESS_LOGGER = "insight.progress"

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

# Xpress reports a missing objective or bound as +-XPRS_PLUSINFINITY.
_INFINITY = 1e40

#: A record that changes nothing still gets a log line this long after the last one shown.
HEARTBEAT_SECONDS = 30.0

# How many appMessageIds are remembered to spot re-sent messages: the server re-sends only the
# ones still unanswered, which is one per paused solve.
_SEEN_IDS = 64


# --------------------------------------------------------------------------- reading


def _number(value: Any) -> float | None:
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
        :class:`ProgressStarted`, so the figures stay in view on a narrow log page."""
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
    number = _number(value)
    return None if number is None or abs(number) >= _INFINITY else number


def _count(value: Any) -> int | None:
    number = _number(value)
    if number is None or number < 0 or not number.is_integer():
        return None
    return int(number)


def _sense(value: Any) -> Sense | None:
    number = _number(value)
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
        elapsed_seconds=_number(attributes.get("TIME")),
        lp_objective=lp_objective,
        sense=_sense(attributes.get("OBJSENSE")),
        problem_name=problem if isinstance(problem, str) else None,
        solution_file=message.app_message_file,
    )
    if not record.has_solver_figures and record.lp_objective is None:
        return None
    return record


# --------------------------------------------------------------------------- stop rules


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressState:
    """What a stop rule may look at: the latest record and the handler's memory of the solve."""

    record: ProgressRecord
    now: float
    #: The objective sense: the rule's own, else the solver's OBJSENSE, else inferred.
    sense: Sense | None
    #: When (driver's clock) the incumbent last got better; None before the first incumbent.
    improved_at: float | None


def _finite(rule: str, name: str, value: Any, *, minimum: float | None = None) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or (minimum is not None and number < minimum):
        floor = "" if minimum is None else f" of at least {minimum:g}"
        raise ConfigurationError(
            f"stop rule {rule!r}: {name} must be a finite number{floor}, not {value!r}"
        )
    return float(number)


@dataclasses.dataclass(frozen=True, slots=True)
class StopAtGap:
    """Stop once the relative gap is at most ``relative_gap`` (0.01 is 1 %)."""

    KIND: ClassVar[str] = "relative_gap"

    relative_gap: float

    def __post_init__(self) -> None:
        _finite(self.KIND, "relative_gap", self.relative_gap, minimum=0.0)

    def check(self, state: ProgressState) -> str | None:
        """The reason to stop now, or None."""
        gap = state.record.relative_gap
        if gap is None or gap > self.relative_gap:
            return None
        return f"relative gap {gap:.4%} is at most the target {self.relative_gap:.4%}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (trigger kwargs, XCom)."""
        return {"rule": self.KIND, "relative_gap": self.relative_gap}


@dataclasses.dataclass(frozen=True, slots=True)
class StopAfterNoImprovement:
    """Stop when no better solution was found for ``seconds`` since the latest one."""

    KIND: ClassVar[str] = "no_improvement"

    seconds: float

    def __post_init__(self) -> None:
        _finite(self.KIND, "seconds", self.seconds, minimum=0.0)

    def check(self, state: ProgressState) -> str | None:
        """The reason to stop now, or None."""
        if state.improved_at is None:
            return None
        quiet = state.now - state.improved_at
        if quiet < self.seconds:
            return None
        return f"no better solution for {quiet:.1f}s (limit {self.seconds:g}s)"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (trigger kwargs, XCom)."""
        return {"rule": self.KIND, "seconds": self.seconds}


@dataclasses.dataclass(frozen=True, slots=True)
class StopAtObjective:
    """Stop once the best solution is at least as good as ``value``.

    "As good" follows ``sense``; when None, the solver's ``OBJSENSE`` attribute decides, else the
    side the bound is on. The rule does not fire while the sense is unknown.
    """

    KIND: ClassVar[str] = "objective"

    value: float
    sense: Sense | None = None

    def __post_init__(self) -> None:
        _finite(self.KIND, "value", self.value)
        if self.sense not in (None, "minimize", "maximize"):
            raise ConfigurationError(
                f"stop rule {self.KIND!r}: sense must be 'minimize', 'maximize' or None, "
                f"not {self.sense!r}"
            )

    def check(self, state: ProgressState) -> str | None:
        """The reason to stop now, or None."""
        best = state.record.best_solution
        sense = self.sense or state.sense
        if best is None or sense is None:
            return None
        reached = best <= self.value if sense == "minimize" else best >= self.value
        if not reached:
            return None
        relation = "at most" if sense == "minimize" else "at least"
        return f"best solution {best:.10g} is {relation} the target {self.value:.10g} ({sense})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (trigger kwargs, XCom)."""
        return {"rule": self.KIND, "value": self.value, "sense": self.sense}


StopRule = StopAtGap | StopAfterNoImprovement | StopAtObjective

_RULE_FIELDS: Mapping[str, tuple[type[StopRule], frozenset[str], frozenset[str]]] = {
    StopAtGap.KIND: (StopAtGap, frozenset({"relative_gap"}), frozenset()),
    StopAfterNoImprovement.KIND: (StopAfterNoImprovement, frozenset({"seconds"}), frozenset()),
    StopAtObjective.KIND: (StopAtObjective, frozenset({"value"}), frozenset({"sense"})),
}


def stop_rule_from_dict(item: Mapping[str, Any]) -> StopRule:
    """A rule from its JSON-safe form; a :class:`ConfigurationError` names what is wrong."""
    if not isinstance(item, Mapping):
        raise ConfigurationError(f"a stop rule must be a rule object or a dict, not {item!r}")
    kind = item.get("rule")
    if not isinstance(kind, str) or kind not in _RULE_FIELDS:
        known = ", ".join(sorted(_RULE_FIELDS))
        raise ConfigurationError(f"unknown stop rule {kind!r}: use one of {known}")
    cls, required, optional = _RULE_FIELDS[kind]
    fields = set(item) - {"rule"}
    if missing := required - fields:
        raise ConfigurationError(f"stop rule {kind!r} needs {', '.join(sorted(missing))}")
    if extra := fields - required - optional:
        raise ConfigurationError(f"stop rule {kind!r} has unknown fields {sorted(extra)}")
    return cls(**{name: item[name] for name in fields})


def stop_rules_from_json(
    items: Iterable[StopRule | Mapping[str, Any]] | None,
) -> tuple[StopRule, ...]:
    """Rules from rule objects or their JSON-safe forms (operator argument, trigger kwargs)."""
    if items is None:
        return ()
    if isinstance(items, Mapping | str):
        raise ConfigurationError("stop_rules must be a list of stop rules")
    rules: list[StopRule] = []
    for item in items:
        if isinstance(item, StopAtGap | StopAfterNoImprovement | StopAtObjective):
            rules.append(item)
        else:
            rules.append(stop_rule_from_dict(item))
    return tuple(rules)


def stop_rules_to_json(rules: Iterable[StopRule]) -> list[dict[str, Any]]:
    """The JSON-safe forms of ``rules``, in order."""
    return [rule.to_dict() for rule in rules]


# --------------------------------------------------------------------------- series


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


def _series_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
        raise ConfigurationError(f"the progress series needs a limit of at least 2, not {limit!r}")
    return limit


class ProgressSeries:
    """The solve's progress over time, bounded in memory and in its XCom form.

    Holds at most ``4 * limit`` points, thinning to ``2 * limit`` when full, so a solve of any
    length costs constant memory; :meth:`to_json` gives at most ``limit`` points.
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = _series_limit(limit)
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
        time = _number(values.get("time"))
        if time is None:
            continue
        points.append(
            ProgressPoint(
                time=time,
                best_solution=_number(values.get("best_solution")),
                best_bound=_number(values.get("best_bound")),
                relative_gap=_number(values.get("relative_gap")),
                solver_time=_number(values.get("solver_time")),
            )
        )
    return points


# --------------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressStarted:
    """The first progress record of a job follows: says once what the record lines belong to."""

    log_level: ClassVar[int] = logging.INFO
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    job_id: str
    problem_name: str | None
    heartbeat_seconds: float

    def describe(self) -> str:
        """One log line naming the job and how to read the records that follow."""
        problem = f" (problem {self.problem_name})" if self.problem_name else ""
        return (
            f"Solver progress of Insight compute job {self.job_id}{problem}: a line per new "
            f"solution or moved gap, else one every {self.heartbeat_seconds:g} s; "
            f"best = best solution, bound = best bound, t = the solver's own time"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressRecorded:
    """A solver callback was answered and read into a progress record.

    ``shown`` is False when the record repeats what the last shown one said (an INTSOL's
    figures arrive again with the next GLOBALLOG): it is then logged at DEBUG only.
    """

    #: Adapters log this event on the progress logger, not the run log.
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    record: ProgressRecord
    shown: bool = True

    @property
    def log_level(self) -> int:
        """INFO for a record worth a line in the task log, DEBUG for a repeat."""
        return logging.INFO if self.shown else logging.DEBUG

    @property
    def job_id(self) -> str:
        """The compute job id."""
        return self.record.job_id

    def describe(self) -> str:
        """One log line."""
        return self.record.describe()


@dataclasses.dataclass(frozen=True, slots=True)
class StopDecision:
    """A stop rule fired: which one, why, and on which message."""

    rule: dict[str, Any]
    reason: str
    app_message_id: str
    time: float
    #: The solver's own elapsed time on that message (where the picture marks the stop).
    solver_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy."""
        return {
            "rule": dict(self.rule),
            "reason": self.reason,
            "app_message_id": self.app_message_id,
            "solver_time": self.solver_time,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class SolveStopRequested:
    """A stop rule fired; the callback was answered ``interruptSolve: true``."""

    log_level: ClassVar[int] = logging.WARNING
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    job_id: str
    decision: StopDecision

    def describe(self) -> str:
        """One log line."""
        return (
            f"Insight compute job {self.job_id}: stopping the solve (interruptSolve=true), "
            f"stop rule {self.decision.rule['rule']}: {self.decision.reason}{_at(self.decision)}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressUnreadable:
    """A solver callback was answered but carried no figure a record could show."""

    log_level: ClassVar[int] = logging.DEBUG
    logger_name: ClassVar[str] = PROGRESS_LOGGER

    job_id: str
    app_message_id: str
    app_message_type: str | None
    reason: str

    def describe(self) -> str:
        """One log line."""
        return (
            f"Insight compute job {self.job_id}: answered solver callback "
            f"{self.app_message_type} ({self.app_message_id}) without a progress record: "
            f"{self.reason}"
        )


def _at(decision: StopDecision) -> str:
    return "" if decision.solver_time is None else f" (solver time {decision.solver_time:.1f}s)"


ProgressEvent = ProgressStarted | ProgressRecorded | SolveStopRequested | ProgressUnreadable


# --------------------------------------------------------------------------- handler


def _better(new: float, old: float, sense: Sense | None) -> bool:
    # Without a known sense any change counts: Xpress only ever reports a better incumbent.
    tolerance = 1e-9 * max(1.0, abs(old))
    if sense == "minimize":
        return new < old - tolerance
    if sense == "maximize":
        return new > old + tolerance
    return abs(new - old) > tolerance


def _inferred_sense(record: ProgressRecord) -> Sense | None:
    best, bound = record.best_solution, record.best_bound
    if best is None or bound is None or best == bound:
        return None
    return "minimize" if bound < best else "maximize"


class SolverProgress:
    """The ``APP_MESSAGE`` handler for one followed job (``AppMessageHandler``).

    Answers every message at once, records its progress, and interrupts the solve when one of
    ``stop_rules`` fires (rules are tried in order; the first that fires is reported). Records
    are shown (logged at INFO) when their best solution or gap (the bound before there is a gap)
    reads differently from the last shown one, or ``heartbeat_seconds`` (driver's clock) after
    it; the rest at DEBUG.
    """

    def __init__(
        self,
        stop_rules: Iterable[StopRule | Mapping[str, Any]] | None = (),
        *,
        series_limit: int = 200,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.stop_rules = stop_rules_from_json(stop_rules)
        self.series = ProgressSeries(series_limit)
        if not (isinstance(heartbeat_seconds, int | float) and heartbeat_seconds >= 0):
            raise ConfigurationError(
                f"heartbeat_seconds must be a number of at least 0, not {heartbeat_seconds!r}"
            )
        self.heartbeat_seconds = float(heartbeat_seconds)
        self._shown: tuple[float, tuple[str, str]] | None = None
        self.last_record: ProgressRecord | None = None
        self.stopped_by: StopDecision | None = None
        self.messages_answered = 0
        #: ``appMessageFile`` of the latest incumbent (INTSOL), to download after the job.
        self.latest_solution_file: str | None = None
        self._sense: Sense | None = None
        self._best: float | None = None
        self._improved_at: float | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()

    def answer(
        self, message: m.AppMessage, now: float
    ) -> tuple[m.AppMessageResponse, Sequence[ProgressEvent]]:
        """The response to send at once, and the events to log."""
        self.messages_answered += 1
        events: list[ProgressEvent] = []
        if not self._is_resent(message.app_message_id):
            events.extend(self._read(message, now))
        response = m.AppMessageResponse(
            message.compute_job_id,
            message.app_message_id,
            interrupt_solve=self.stopped_by is not None,
        )
        return response, events

    def _is_resent(self, app_message_id: str) -> bool:
        if app_message_id in self._seen:
            return True
        self._seen[app_message_id] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        return False

    def _read(self, message: m.AppMessage, now: float) -> list[ProgressEvent]:
        record = read_progress(message, now)
        if record is None:
            reason = "no solver attributes" if message.app_message else "no appMessage body"
            return [
                ProgressUnreadable(
                    message.compute_job_id, message.app_message_id, message.app_message_type, reason
                )
            ]
        self._remember(record, now)
        decision = self._decide(record, now) if self.stopped_by is None else None
        events: list[ProgressEvent] = []
        if self._shown is None:
            started = ProgressStarted(record.job_id, record.problem_name, self.heartbeat_seconds)
            events.append(started)
        # The record a rule fired on is always shown: the stop warning that follows refers to it.
        shown = self._worth_a_line(record, now, stopping=decision is not None)
        events.append(ProgressRecorded(record, shown=shown))
        if decision is not None:
            self.stopped_by = decision
            events.append(SolveStopRequested(record.job_id, decision))
        return events

    def _worth_a_line(self, record: ProgressRecord, now: float, *, stopping: bool) -> bool:
        figures = record.shown_figures()
        if self._shown is not None and not stopping:
            shown_at, shown = self._shown
            if figures == shown and now - shown_at < self.heartbeat_seconds:
                return False
        self._shown = (now, figures)
        return True

    def _remember(self, record: ProgressRecord, now: float) -> None:
        self.last_record = record
        self.series.add(record)
        if record.solution_file is not None:
            self.latest_solution_file = record.solution_file
        self._sense = record.sense or self._sense or _inferred_sense(record)
        best = record.best_solution
        if best is not None and (self._best is None or _better(best, self._best, self._sense)):
            self._best = best
            self._improved_at = now

    def _decide(self, record: ProgressRecord, now: float) -> StopDecision | None:
        state = ProgressState(record, now, self._sense, self._improved_at)
        for rule in self.stop_rules:
            reason = rule.check(state)
            if reason is not None:
                return StopDecision(
                    rule.to_dict(), reason, record.app_message_id, now, record.elapsed_seconds
                )
        return None

    def summary(self) -> dict[str, Any]:
        """The JSON-safe progress part of the task's result (XCom)."""
        last = self.last_record
        return {
            "stopped_early": self.stopped_by is not None,
            "stopped_by": None if self.stopped_by is None else self.stopped_by.to_dict(),
            "stop_rules": stop_rules_to_json(self.stop_rules),
            "messages_answered": self.messages_answered,
            "latest_solution_file": self.latest_solution_file,
            # Without "time": a reading of the driver's clock means nothing in XCom.
            "last": None if last is None else _without_time(last.to_dict()),
            "series": self.series.to_json(),
        }


if TYPE_CHECKING:
    # mypy proves here that the handler fits the core's interface.
    _conforms: AppMessageHandler = SolverProgress()


def _without_time(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "time"}


# --------------------------------------------------------------------------- job request


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


# --------------------------------------------------------------------------- task options


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
        return cls(callbacks, rules, _series_limit(series_limit))

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
