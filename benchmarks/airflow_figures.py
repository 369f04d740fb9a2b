"""Figures from real Airflow runs: run-log throughput into the task log, and whole-task time."""

from __future__ import annotations

import statistics
import time
from typing import Any

from airflow_insight.emulator import JobScript
from benchmarks import dag_sources
from benchmarks.airflow_runs import AirflowHome, DagRunResult, run_log_stats
from benchmarks.emulator_proc import EmulatorProcess
from benchmarks.harness import Figure, verdict
from benchmarks.jobs import connection_json, flood_script


def _insight_run(
    home: AirflowHome, emu: EmulatorProcess, job_id: str, deferrable: bool
) -> DagRunResult:
    env = {
        "AIRFLOW_CONN_INSIGHT_DEFAULT": connection_json(emu.base_url),
        "BENCH_JOB_ID": job_id,
        "BENCH_DEFERRABLE": "1" if deferrable else "0",
    }
    return home.run_dag_file("bench_insight_job", dag_sources.INSIGHT_JOB, env)


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' stats as one: median rate, lost and duplicated summed over all runs."""
    merged = dict(runs[len(runs) // 2])
    merged["lines_per_second"] = round(statistics.median(r["lines_per_second"] for r in runs), 1)
    merged["lines_per_second_runs"] = [r["lines_per_second"] for r in runs]
    merged["lost"] = sum(r["lost"] for r in runs)
    merged["duplicated"] = sum(r["duplicated"] for r in runs)
    merged["runs"] = len(runs)
    return merged


def throughput(home: AirflowHome, lines: int, repeats: int = 1) -> list[Figure]:
    """Lines per second into the task log: Airflow's own logger, then sync and deferred.

    The three runs alternate ``repeats`` times and each rate is the median of its runs, so a
    burst of other work on the machine skews one run, not the figure.
    """
    stdlib: list[dict[str, Any]] = []
    structured: list[dict[str, Any]] = []
    modes: dict[str, list[dict[str, Any]]] = {"sync": [], "deferred": []}
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {"ceiling": 0.0, "sync": 0.0, "deferred": 0.0}
    with EmulatorProcess(record_messages=False, record_limit=10_000) as emu:
        emu.rule("tp-*", flood_script(lines, batch_size=500))
        for round_ in range(repeats):
            began = time.perf_counter()
            plain = home.run_dag_file(
                "bench_plain_logger", dag_sources.PLAIN_LOGGER, {"BENCH_LINES": str(lines)}
            )
            seconds["ceiling"] += time.perf_counter() - began
            if not plain.ok:
                failures["ceiling"] = plain.failure()
            stdlib.append(run_log_stats(plain.stdout, lines, "bench stdlib line"))
            structured.append(run_log_stats(plain.stdout, lines, "bench structlog line"))
            for mode in modes:
                began = time.perf_counter()
                run = _insight_run(home, emu, f"tp-{mode}-{round_}", mode == "deferred")
                seconds[mode] += time.perf_counter() - began
                if not run.ok:
                    failures[mode] = run.failure()
                modes[mode].append(run_log_stats(run.stdout, lines))
    stdlib_rate = _merge(stdlib)["lines_per_second"]
    structlog_stats = _merge(structured)
    ceiling = (
        _merge(stdlib) if stdlib_rate > structlog_stats["lines_per_second"] else structlog_stats
    )
    ceiling["stdlib_lines_per_second"] = stdlib_rate
    ceiling["structlog_lines_per_second"] = structlog_stats["lines_per_second"]
    figures = [
        Figure(
            id="runlog_logger_ceiling",
            title="Task logger ceiling (plain @task)",
            how=(
                f"dag.test() in a child process (temp AIRFLOW_HOME, SQLite) of two plain @tasks "
                f"that each log {lines:,} numbered lines: one with logging.getLogger("
                "'airflow.task').info (stdlib, as user code does), one with structlog.get_logger"
                "('airflow.task').info (as Airflow's loggers and the operator's run-log sink do). "
                "Rate = (lines - 1) / (timestamp of the last line - of the first), the "
                "timestamps the task logger wrote on the records (dag.test prints the task log to "
                f"stdout); median of {repeats} run(s), alternating with the two below. The "
                "ceiling is the faster of the two loggers."
            ),
            target="the ceiling for the next two",
            values=ceiling,
            status="error" if "ceiling" in failures else "info",
            note=failures.get("ceiling", ""),
            seconds=seconds["ceiling"],
        )
    ]
    for mode, runs in modes.items():
        stats = _merge(runs)
        top = ceiling["lines_per_second"]
        percent = 100.0 * stats["lines_per_second"] / top if top else 0.0
        stats["percent_of_logger"] = round(percent, 1)
        need = 80.0 if mode == "deferred" else 90.0
        ok = percent >= need and stats["lost"] == 0 and stats["duplicated"] == 0
        figures.append(
            Figure(
                id=f"runlog_throughput_{mode}",
                title=f"Run-log throughput, {mode}",
                how=(
                    f"dag.test() in a child process of one InsightJobOperator (deferrable="
                    f"{mode == 'deferred'}; dag.test runs the trigger inline) following a job "
                    f"that writes {lines:,} numbered lines as fast as the emulator can (batches "
                    "of 500). Same rate formula as the ceiling, over the lines in the task log"
                    + (
                        " (the trigger's log stream and execute_complete's REST fill-in)"
                        if mode == "deferred"
                        else ""
                    )
                    + f", median of {repeats} run(s); lost = numbers missing, duplicated = "
                    "extra copies (summed over the runs)."
                ),
                target=f">= {need:g} % of the logger; 0 lost, 0 duplicated",
                values=stats,
                status="error" if mode in failures else verdict(ok),
                note=failures.get(mode, ""),
                seconds=seconds[mode],
            )
        )
    return figures


def whole_task(home: AirflowHome, repeats: int) -> Figure:
    """dag.test() wall time: a job that runs 1 s on the server against a 1 s sleep task."""
    started = time.perf_counter()
    sleep_runs: list[DagRunResult] = []
    insight_runs: list[DagRunResult] = []
    with EmulatorProcess(record_messages=False) as emu:
        # QUEUED 0.1 s + EXECUTING 0.8 s (10 lines) + COMPLETING 0.1 s: 1 s on the server.
        emu.rule(
            "whole-*",
            JobScript(
                name="one-second",
                queued_seconds=0.1,
                log_lines=10,
                lines_per_second=12.5,
                batch_size=1,
                completing_seconds=0.1,
            ),
        )
        for index in range(repeats):
            sleep_runs.append(
                home.run_dag_file("bench_sleep", dag_sources.SLEEP, {"BENCH_SLEEP_SECONDS": "1"})
            )
            insight_runs.append(_insight_run(home, emu, f"whole-{index}", deferrable=False))
    failed = [r for r in sleep_runs + insight_runs if not r.ok]
    if failed:
        return Figure(
            id="whole_task",
            title="Whole task vs 1 s sleep",
            how="see the full run",
            target="overhead <= 10 %",
            status="error",
            note=failed[0].failure(),
            seconds=time.perf_counter() - started,
        )

    def median(runs: list[DagRunResult], key: str) -> float:
        values: list[float] = []
        for run in runs:
            value: Any = run.result[key]
            values.append(float(next(iter(value.values())) if isinstance(value, dict) else value))
        return statistics.median(values)

    sleep_wall = median(sleep_runs, "dag_test_seconds")
    insight_wall = median(insight_runs, "dag_test_seconds")
    sleep_task = median(sleep_runs, "task_seconds")
    insight_task = median(insight_runs, "task_seconds")
    overhead = 100.0 * (insight_wall - sleep_wall) / sleep_wall
    values = {
        "repeats": repeats,
        "insight_wall_seconds": round(insight_wall, 3),
        "sleep_wall_seconds": round(sleep_wall, 3),
        "overhead_percent": round(overhead, 1),
        "added_seconds": round(insight_wall - sleep_wall, 3),
        "insight_task_seconds": round(insight_task, 3),
        "sleep_task_seconds": round(sleep_task, 3),
        "task_overhead_percent": round(100.0 * (insight_task - sleep_task) / sleep_task, 1),
    }
    return Figure(
        id="whole_task",
        title="Whole task vs 1 s sleep",
        how=(
            f"dag.test() wall time (timed around dag.test() inside the child, median of "
            f"{repeats}) of a DAG with one blocking InsightJobOperator whose job runs 1 s on the "
            "server (QUEUED 0.1 s, EXECUTING 0.8 s with 10 lines, COMPLETING 0.1 s), against the "
            "same DAG with a @task that sleeps 1 s; runs alternate. task_* = the task "
            "instance's start-to-end from the metadata DB (dag.test adds a few seconds of its "
            "own per task to both)."
        ),
        target="overhead <= 10 %",
        values=values,
        status=verdict(overhead <= 10),
        seconds=time.perf_counter() - started,
    )
