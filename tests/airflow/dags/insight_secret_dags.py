"""DAGs whose Insight task prints the bearer tokens through a third-party library's logger.

As a library's debug log or an exception's text would: the test then finds them redacted in the
task log. ``ISSUED`` is set by the test (the emulator runs in the test process under dag.test()).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG

from airflow_insight.operators.insight import InsightJobOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
#: The tokens the emulator has issued so far; set by the test before the run.
ISSUED: Callable[[], list[str]] = list
#: The start of each leaked line, for the test to find it.
LEAK = "leaked header: Authorization: Bearer "


class LeakingOperator(InsightJobOperator):
    """Logs every issued token through ``urllib3``'s logger when its job has ended."""

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        _leak()
        return result

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        result = super().execute_complete(context, event)
        _leak()
        return result


def _leak() -> None:
    for token in ISSUED():
        logging.getLogger("urllib3").warning("%s%s", LEAK, token)


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


with _dag("ts_blocking") as ts_blocking:
    LeakingOperator(task_id="solve", job_request={"computeJobType": "SOLVER"})

with _dag("ts_deferrable") as ts_deferrable:
    LeakingOperator(task_id="solve", job_request={"computeJobType": "SOLVER"}, deferrable=True)
