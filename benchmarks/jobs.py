"""Job scripts and requests the benchmarks share, so every client sees the same jobs."""

from __future__ import annotations

import random
from typing import Any

from airflow_insight.emulator import JobScript, airflow_connection_json
from airflow_insight.settings import ConnectionSettings
from benchmarks.emulator_proc import CLIENT_ID, CLIENT_SECRET


def settings(base_url: str, **options: Any) -> ConnectionSettings:
    """Connection settings for the benchmark emulator."""
    return ConnectionSettings(
        base_url=base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **options
    )


def connection_json(base_url: str, **extras: Any) -> str:
    """The Airflow connection (JSON form of ``AIRFLOW_CONN_<ID>``) for the benchmark emulator."""
    return airflow_connection_json(
        base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, extra=extras
    )


def job_request(job_id: str, *, run_log_messages: bool = True) -> dict[str, Any]:
    """A minimal valid ComputeJobRequest (a scripted SOLVER job, no payload)."""
    return {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": run_log_messages}


def latency_scripts(
    count: int,
    *,
    queued_seconds: float,
    executing_seconds: tuple[float, float] = (0.1, 0.6),
    seed: int = 6,
) -> list[JobScript]:
    """``count`` short jobs whose run times are spread (seeded) over ``executing_seconds``.

    Spread run times put each job's end at a different phase of a poller's schedule, as real
    jobs would; 20 run-log lines each, so the follower also forwards a little log.
    """
    rng = random.Random(seed)
    scripts = []
    for index in range(count):
        executing = rng.uniform(*executing_seconds)
        scripts.append(
            JobScript(
                name=f"latency-{index}",
                queued_seconds=queued_seconds,
                log_lines=20,
                lines_per_second=20 / executing,
                batch_size=5,
                completing_seconds=0.05,
            )
        )
    return scripts


def flood_script(lines: int, *, batch_size: int = 500, lines_per_second: float = 0.0) -> JobScript:
    """A job that writes ``lines`` numbered lines as fast as it can (or at ``lines_per_second``)."""
    return JobScript(
        name="bench-flood",
        queued_seconds=0.05,
        log_lines=lines,
        lines_per_second=lines_per_second,
        batch_size=batch_size,
        line_template="bench run-log line {n}",
        completing_seconds=0.02,
    )
