"""The DAG files the Airflow benchmarks run (as text: each is written into its own DAGs folder).

Parameters reach them through environment variables (``BENCH_*``) so the text stays constant.
"""

from __future__ import annotations

_HEADER = """
import logging
import os
import time

import pendulum
from airflow.sdk import dag, task

from benchmarks.airflow_runs import run_dag_test

START = pendulum.datetime(2024, 1, 1, tz="UTC")
"""

#: Plain @tasks that log BENCH_LINES numbered lines through Airflow's task logger: the ceiling.
#: One logs through the standard library (what user code does), one through structlog (what
#: Airflow's own loggers and the operator's run-log sink do); the faster one is the ceiling.
PLAIN_LOGGER = (
    _HEADER
    + """
import structlog

LINES = int(os.environ["BENCH_LINES"])


@dag(dag_id="bench_plain_logger", schedule=None, start_date=START, catchup=False)
def bench_plain_logger():
    @task
    def log_stdlib():
        log = logging.getLogger("airflow.task")
        for n in range(LINES):
            log.info("bench stdlib line %d", n)

    @task
    def log_structlog():
        log = structlog.get_logger("airflow.task")
        for n in range(LINES):
            log.info(f"bench structlog line {n}")

    log_stdlib() >> log_structlog()


DAG = bench_plain_logger()

if __name__ == "__main__":
    run_dag_test(DAG)
"""
)

#: The same DAG shape with a task that sleeps BENCH_SLEEP_SECONDS: the "whole task" baseline.
SLEEP = (
    _HEADER
    + """
SECONDS = float(os.environ["BENCH_SLEEP_SECONDS"])


@dag(dag_id="bench_sleep", schedule=None, start_date=START, catchup=False)
def bench_sleep():
    @task
    def run():
        time.sleep(SECONDS)

    run()


DAG = bench_sleep()

if __name__ == "__main__":
    run_dag_test(DAG)
"""
)

#: One InsightJobOperator; BENCH_DEFERRABLE picks the mode, BENCH_JOB_ID the compute job id.
INSIGHT_JOB = (
    _HEADER
    + """
from airflow_insight.operators.insight import InsightJobOperator

DEFERRABLE = os.environ["BENCH_DEFERRABLE"] == "1"


@dag(dag_id="bench_insight_job", schedule=None, start_date=START, catchup=False)
def bench_insight_job():
    InsightJobOperator(
        task_id="run",
        insight_conn_id="insight_default",
        job_id=os.environ["BENCH_JOB_ID"],
        job_request={"computeJobType": "SOLVER"},
        deferrable=DEFERRABLE,
    )


DAG = bench_insight_job()

if __name__ == "__main__":
    run_dag_test(DAG)
"""
)
