"""Live solver progress: answer ``APP_MESSAGE`` callbacks, record the solve, stop it by rule.

A SOLVER job whose request lists ``solver.callbacks`` pauses the solve at each callback point and
sends ``APP_MESSAGE`` with the solver's attributes; the client must answer every one (§A10,
§B4.7.3). This package is a feature beside the protocol core, with the core's rules: no I/O, no
clock of its own, no Airflow. The core knows it only through two small interfaces of its own
(``AppMessageHandler`` and ``HandlerEvent``, ``SolverCallbacks`` for the request) and never
imports it. Its rooms: :mod:`.records` (reading a message), :mod:`.rules` (stop rules),
:mod:`.series` (the bounded series), :mod:`.events`, :mod:`.handler` (:class:`SolverProgress`)
and :mod:`.options` (what a task asks for). See ``docs/design.md#solver-progress-beside-the-core``.

The names users and adapters need are importable from here.
"""

from airflow_insight.progress.events import (
    PROGRESS_LOGGER,
    ProgressEvent,
    ProgressRecorded,
    ProgressStarted,
    ProgressUnreadable,
    SolveStopRequested,
)
from airflow_insight.progress.handler import HEARTBEAT_SECONDS, SolverProgress
from airflow_insight.progress.options import (
    CALLBACKS,
    ProgressOptions,
    progress_callbacks,
    with_progress_callbacks,
)
from airflow_insight.progress.records import (
    MISSING,
    ProgressRecord,
    Sense,
    gap_text,
    objective_text,
    read_progress,
    relative_gap,
    solver_attributes,
)
from airflow_insight.progress.rules import (
    ProgressState,
    StopAfterNoImprovement,
    StopAtGap,
    StopAtObjective,
    StopDecision,
    StopRule,
    stop_rule_from_dict,
    stop_rules_from_json,
    stop_rules_to_json,
)
from airflow_insight.progress.series import (
    SERIES_FIELDS,
    ProgressPoint,
    ProgressSeries,
    downsample,
    series_points,
)

__all__ = [
    "CALLBACKS",
    "HEARTBEAT_SECONDS",
    "MISSING",
    "PROGRESS_LOGGER",
    "SERIES_FIELDS",
    "ProgressEvent",
    "ProgressOptions",
    "ProgressPoint",
    "ProgressRecord",
    "ProgressRecorded",
    "ProgressSeries",
    "ProgressStarted",
    "ProgressState",
    "ProgressUnreadable",
    "Sense",
    "SolveStopRequested",
    "SolverProgress",
    "StopAfterNoImprovement",
    "StopAtGap",
    "StopAtObjective",
    "StopDecision",
    "StopRule",
    "downsample",
    "gap_text",
    "objective_text",
    "progress_callbacks",
    "read_progress",
    "relative_gap",
    "series_points",
    "solver_attributes",
    "stop_rule_from_dict",
    "stop_rules_from_json",
    "stop_rules_to_json",
    "with_progress_callbacks",
]
