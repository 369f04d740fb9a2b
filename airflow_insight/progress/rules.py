"""Declarative stop rules: when to answer a solver callback ``interruptSolve: true``.

:class:`StopAtGap`, :class:`StopAfterNoImprovement` and :class:`StopAtObjective` each look at a
:class:`ProgressState` and give the reason to stop, or None; :class:`StopDecision` records the
one that fired. Rules travel as JSON-safe dicts (trigger kwargs, XCom):
:func:`stop_rules_from_json` reads them, naming what is wrong in a ``ConfigurationError``.

"No improvement" counts in the driver's clock from the latest better incumbent; before the first
incumbent it never fires (stopping then would leave no solution at all: use the solver's own
``XPRS_MAXTIME`` or the task's timeout for that).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress.records import ProgressRecord, Sense


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
