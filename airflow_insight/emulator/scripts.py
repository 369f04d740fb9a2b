"""Job scripts: the deterministic timeline a compute job follows in the emulator.

A job is ``QUEUED`` for ``queued_seconds``, passes through ``pre_executing_statuses`` (e.g. the
legacy ``CONNECTING`` or a status no client knows), is ``EXECUTING`` while it writes its run log,
``COMPLETING`` for ``completing_seconds`` and then ends in ``final_status``. With ``solve`` the
``EXECUTING`` phase runs a real solve of the payload's LP/MPS model instead of writing the
scripted log (falling back to the script when no solver is available).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from airflow_insight.emulator.faults import Fault


def _sample_attributes() -> Mapping[str, Any]:
    return {"MIPBESTOBJVAL": 1996.0, "BESTBOUND": 1971.5, "MIPSOLS": 2, "NODES": 3, "TIME": 0.5}


@dataclasses.dataclass(frozen=True)
class ScriptedAppMessage:
    """An APP_MESSAGE a scripted job sends after ``after_lines`` lines, then waits for its answer.

    Sent whatever the request's ``solver.callbacks`` (the script is the test's choice); the
    ``attributes`` (name -> value) are sent in the solver's shape, each with its Optimizer id
    where the emulator knows it (0 otherwise). ``with_file`` attaches an incumbent file
    (``appMessageFile``), as INTSOL does. The answer is handled as for a real solve (see
    :mod:`airflow_insight.emulator.callbacks`): ``interruptSolve`` ends the log there.
    """

    after_lines: int = 0
    app_message_type: str = "GAPNOTIFY"
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=_sample_attributes)
    with_file: bool = False


@dataclasses.dataclass(frozen=True)
class JobScript:
    """What a job does, and when; see the module docstring."""

    name: str = "custom"
    queued_seconds: float = 0.05
    #: Stay ``QUEUED`` after ``queued_seconds`` until the gate of this name is opened
    #: (:meth:`Emulator.open_gate`): a batch of jobs that end together, within milliseconds.
    hold: str | None = None
    pre_executing_statuses: tuple[str, ...] = ()
    status_step_seconds: float = 0.05
    log_lines: int = 10
    #: 0 means "as fast as possible" (all batches back to back).
    lines_per_second: float = 200.0
    batch_size: int = 10
    #: Used when ``lines`` is empty; fields: ``n`` (line number), ``job_id``, ``attempt``.
    line_template: str = "{job_id}: run-log line {n}"
    #: Canned lines used in turn (cycling) instead of the template.
    lines: tuple[str, ...] = ()
    completing_seconds: float = 0.05
    final_status: str = "COMPLETED"
    model_status: str | None = "OK"
    #: The value written into ``solution-status.json`` for a scripted (not solved) run.
    solution_status: str = "Optimal"
    #: Requeue once after this many lines: ``executionAttempts`` 2, the log continues.
    requeue_after_lines: int | None = None
    requeue_seconds: float = 0.05
    #: Time between ``CANCELLING`` and ``CANCELLED`` after a DELETE or a scripted cancel.
    cancel_seconds: float = 0.05
    solve: bool = False
    faults: tuple[Fault, ...] = ()
    #: Solver callbacks this job sends without a solver (for the client's fault tests).
    app_messages: tuple[ScriptedAppMessage, ...] = ()
    #: This job's answer limit for APP_MESSAGEs (scripted or solved); None: the config's.
    app_message_timeout_seconds: float | None = None

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> JobScript:
        """Rebuild a script from ``dataclasses.asdict`` output (e.g. JSON sent to a subprocess).

        Faults cannot be rebuilt from plain fields: give them to the emulator instead.
        """
        values = dict(fields)
        for name in ("lines", "pre_executing_statuses"):
            if name in values:
                values[name] = tuple(values[name])
        if "app_messages" in values:
            values["app_messages"] = tuple(
                item if isinstance(item, ScriptedAppMessage) else ScriptedAppMessage(**item)
                for item in values["app_messages"]
            )
        if values.get("faults"):
            raise ValueError("JobScript.from_fields cannot rebuild faults; inject them instead")
        values.pop("faults", None)
        return cls(**values)

    def line(self, number: int, job_id: str, attempt: int) -> str:
        """The text of run-log line ``number``."""
        if self.lines:
            return self.lines[number % len(self.lines)]
        return self.line_template.format(n=number, job_id=job_id, attempt=attempt)


#: A run log that reads like a small Xpress MIP solve (used by the demo when it cannot solve).
DEMO_LINES: tuple[str, ...] = (
    "FICO Xpress v9.4.2, Hyper, solve started 2026-01-01 10:00:00, on 2 cores",
    "Minimizing MILP  using up to 2 threads and up to 8 GB memory, with these control settings:",
    "MAXTIME = -1800",
    "Original problem has:",
    "       412 rows          360 cols         1440 elements       120 entities",
    "Presolved problem has:",
    "       390 rows          348 cols         1392 elements       118 entities",
    "LP relaxation tightened",
    "Presolve finished in 0 seconds",
    "Will try to keep branch and bound tree memory usage below 4.1 GB",
    "Starting concurrent solve with dual (1 thread), primal (1 thread)",
    "",
    "   Concurrent-Solve,   0s",
    "            Dual                      Primal      ",
    "    objective   dual inf       objective   sum inf  ",
    " P  1843.2500   .0000000 |  p  1843.2500   .0000000 ",
    "------- optimal -------- | ----- interrupted ------ ",
    "Concurrent statistics:",
    "           Dual: 212 simplex iterations, 0.01s",
    "Optimal solution found",
    "",
    "   Iterations   Objective       Dual Inf.       Primal Inf.     Time",
    "          212      1843.250000       .000000       .000000         0",
    "Dual solved problem",
    "  212 simplex iterations in 0.01 seconds at time 0",
    "",
    "Final objective                       : 1.843250000000000e+03",
    "  Max primal violation      (abs/rel) :       0.0 /       0.0",
    "  Max dual violation        (abs/rel) :       0.0 /       0.0",
    "",
    "Starting root cutting & heuristics",
    " ",
    " Its Type    BestSoln    BestBound   Sols    Add    Del     Gap     GInf   Time",
    "a         2109.000000  1843.250000      1                 12.60%       0      0",
    "   1  K   2109.000000  1901.375000      1     41      0    9.85%      37      0",
    "   2  K   2109.000000  1934.812500      1     28     12    8.26%      29      0",
    "k         1996.000000  1934.812500      2                  3.07%       0      0",
    "   3  K   1996.000000  1971.500000      2     19     10    1.23%      14      0",
    "Heuristic search 'R' started",
    "Heuristic search 'R' stopped",
    " ",
    "Cuts in the matrix         : 66",
    "Cut elements in the matrix : 842",
    "",
    "    Node     BestSoln    BestBound   Sols Active  Depth     Gap     GInf   Time",
    "       1  1996.000000  1971.500000      2      2      1    1.23%      14      0",
    "       9  1981.000000  1978.250000      3      4      4    0.14%       3      0",
    "      15  1981.000000  1981.000000      3      0      6    0.00%       0      0",
    " *** Search completed ***",
    "Uncrunching matrix",
    "Final MIP objective                   : 1.981000000000000e+03",
    "Final MIP bound                       : 1.981000000000000e+03",
    "  Solution time / primaldual integral :      0.04s/ 41.612903%",
    "  Number of solutions found / nodes   :         3 /        15",
    "  Max primal violation      (abs/rel) :       0.0 /       0.0",
    "  Max integer violation     (abs    ) :       0.0",
)

#: Looks like a real run: a few seconds, a few dozen lines, and a real solve when it can.
DEMO = JobScript(
    name="demo",
    queued_seconds=0.8,
    log_lines=len(DEMO_LINES),
    lines_per_second=20.0,
    batch_size=4,
    lines=DEMO_LINES,
    completing_seconds=0.5,
    solve=True,
)
QUICK = JobScript(
    name="quick",
    queued_seconds=0.01,
    status_step_seconds=0.01,
    log_lines=5,
    lines_per_second=0.0,
    batch_size=5,
    completing_seconds=0.01,
    cancel_seconds=0.01,
)

#: The scripts the command line knows by name (``--script NAME``, ``--rule GLOB=NAME``).
NAMED_SCRIPTS: dict[str, JobScript] = {
    "demo": DEMO,
    "quick": QUICK,
    "failed": dataclasses.replace(QUICK, name="failed", final_status="FAILED", model_status=None),
    "model-error": dataclasses.replace(
        QUICK, name="model-error", model_status="ERROR", solution_status="Infeasible"
    ),
    "cancelled": dataclasses.replace(
        QUICK, name="cancelled", final_status="CANCELLED", model_status=None
    ),
    "requeue": dataclasses.replace(QUICK, name="requeue", log_lines=10, requeue_after_lines=4),
    "silent": dataclasses.replace(QUICK, name="silent", log_lines=0),
    "flood": JobScript(
        name="flood",
        queued_seconds=0.01,
        log_lines=100_000,
        lines_per_second=50_000.0,
        batch_size=500,
        completing_seconds=0.01,
    ),
    "long": JobScript(
        name="long", queued_seconds=0.05, log_lines=3600, lines_per_second=1.0, batch_size=1
    ),
    "callbacks": dataclasses.replace(
        QUICK,
        name="callbacks",
        log_lines=12,
        batch_size=2,
        app_messages=(
            ScriptedAppMessage(2, "INTSOL", {"MIPBESTOBJVAL": 2109.0, "MIPSOLS": 1}, True),
            ScriptedAppMessage(6, "GLOBALLOG", {"MIPBESTOBJVAL": 1996.0, "BESTBOUND": 1971.5}),
            ScriptedAppMessage(10, "GAPNOTIFY", {"MIPBESTOBJVAL": 1981.0, "BESTBOUND": 1978.25}),
        ),
    ),
}
