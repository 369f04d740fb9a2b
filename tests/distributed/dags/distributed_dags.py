"""DAGs of the distributed test bed (tests/distributed): one DAG per case, so that the emulator's
job ids (``<dag id>.<task id>-<hash>``) tell the cases apart. The emulator's scripts are chosen by
the same prefixes (see ``test_distributed.py``).

Every task retries, quickly: a deploy or crash that fails a try must show as a re-attach (or, where
the provider is wrong, as a second job on the server), not as a plain failure.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import dag

from airflow_insight.operators.insight import InsightJobOperator

#: DAG id -> the tasks it runs: (task id, deferrable).
CASES: dict[str, list[tuple[str, bool]]] = {
    "dist_fanout": [(f"solve_{n:02d}", True) for n in range(50)],
    "dist_log_stall": [("solve", True)],
    "dist_kill_triggerer": [(f"solve_{n}", True) for n in range(3)],
    "dist_term_triggerer_main": [(f"solve_{n}", True) for n in range(2)],
    "dist_term_triggerer_group": [(f"solve_{n}", True) for n in range(2)],
    "dist_term_worker": [("solve", False)],
    "dist_kill_worker": [("solve", False)],
    "dist_mark_failed": [("deferred", True), ("blocking", False)],
    "dist_restart_scheduler": [("deferred", True), ("blocking", False)],
}


#: Every DAG's arguments but its id.
DAG_ARGUMENTS: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime.datetime(2026, 1, 1),
    "catchup": False,
    "max_active_tasks": 64,
    "default_args": {"retries": 2, "retry_delay": datetime.timedelta(seconds=3)},
}


def _build(dag_id: str, tasks: list[tuple[str, bool]]) -> object:
    @dag(dag_id=dag_id, **DAG_ARGUMENTS)
    def _dag() -> None:
        for task_id, deferrable in tasks:
            InsightJobOperator(
                task_id=task_id,
                deferrable=deferrable,
                execution_timeout=datetime.timedelta(minutes=20),
            )

    return _dag()


#: The maps of ``dist_end_together``'s one mapped task.
TOGETHER_MAPS = 6


@dag(dag_id="dist_end_together", **DAG_ARGUMENTS)
def dist_end_together() -> None:
    """One mapped deferrable task: the emulator holds its jobs and ends them together."""
    InsightJobOperator.partial(
        task_id="solve", deferrable=True, execution_timeout=datetime.timedelta(minutes=20)
    ).expand(job_request=[{"computeJobType": "SOLVER"}] * TOGETHER_MAPS)


for _dag_id, _tasks in CASES.items():
    globals()[_dag_id] = _build(_dag_id, _tasks)
globals()["dist_end_together"] = dist_end_together()
