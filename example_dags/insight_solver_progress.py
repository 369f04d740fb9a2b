"""Solve a MIP on Insight, follow the solver's progress live, and stop once the gap is 1 %.

``scripts/demo insight_solver_progress`` runs this DAG against the bundled emulator, which solves
the model with real xpress callbacks. The model (models/fixed_charge_transport, 1,122 rows plus
columns) reaches a 1 % gap after about a quarter of the nodes it needs to prove optimality (about
1,900 of 7,849 nodes; on a 2-core machine the gap rule fired after 9.4 s of solving at load 2 and
25.4 s at load 4), so the gap rule ends the solve early.

``solver_progress=True`` adds the progress callbacks to ``solver.callbacks`` (INTSOL and the MIP
log for a MIP, and GAPNOTIFY at the gap rule's target); the task log (logger ``insight.progress``)
names the job once, then gets one line per new solution or moved gap, e.g.
``GLOBALLOG  best 5680  bound 5623.12  gap 1.00%  nodes 1,831  sols 16  t 19.9s`` (``t`` is the
solver's own time), and the first stop rule that fires answers ``interruptSolve: true``. The
task's result carries the progress under ``progress``: whether, why and when the solve was
stopped, the last record, and the series (time, best solution, best bound, gap, solver time)
downsampled for XCom; the picture of the series (solver time across, the gap on a log scale, the
stop marked) and the latest incumbent are written next to the results zip.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.progress import StopAfterNoImprovement, StopAtGap

MODEL_DIR = Path(__file__).parent / "models" / "fixed_charge_transport"
RESULTS_DIR = Path(os.environ.get("AIRFLOW_HOME", "/tmp")) / "insight-results"


@dag(
    dag_id="insight_solver_progress",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    tags=["insight", "example", "solver-progress"],
)
def insight_solver_progress() -> None:
    """One MIP solve stopped by a gap rule, its progress picture, then a task that reports it."""
    out = str(RESULTS_DIR / "{{ ds }}" / "{{ ti.task_id }}")
    solve = InsightJobOperator(
        task_id="solve_fixed_charge_transport",
        job_request={
            "computeJobType": "SOLVER",
            "solver": {
                "problemType": "MIP",
                "resultsToInclude": ["SOLUTION"],
                # The solver's own limit, in case no rule fires.
                "controls": {"XPRS_MAXTIME": "-300"},
            },
        },
        payload=str(MODEL_DIR),
        solver_progress=True,
        # Stop at a 1 % gap, or when two minutes pass without a better solution.
        stop_rules=[StopAtGap(relative_gap=0.01), StopAfterNoImprovement(seconds=120)],
        results_path=out + "-results.zip",
        # The gap and bound over time (needs the 'plot' extra; without it, a warning), and the
        # latest incumbent the solver reported (INTSOL's appMessageFile).
        progress_plot_path=out + "-progress.png",
        solution_path=out + "-incumbent.slx",
        execution_timeout=datetime.timedelta(minutes=15),
    )

    @task
    def report(result: dict[str, Any]) -> str:
        """Say how the solve ended: stopped early by a rule, or run to its end."""
        progress = result.get("progress")
        if progress is None:  # an earlier try's completed job was reused: no solve followed
            return "no progress followed in this try"
        last = progress["last"] or {}
        if progress["stopped_early"]:
            how = f"stopped early: {progress['stopped_by']['reason']}"
        else:
            how = "ran to its end"
        print(
            f"Insight job {result['compute_job_id']} {how}; best solution "
            f"{last.get('best_solution')}, best bound {last.get('best_bound')}, "
            f"gap {last.get('relative_gap')}; picture {result.get('progress_plot_path')}, "
            f"incumbent {result.get('solution_path')}"
        )
        return how

    report(solve.output)


insight_solver_progress()
