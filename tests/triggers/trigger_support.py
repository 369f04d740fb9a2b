"""Shared helpers of the trigger tests (a uniquely named module: no clash between conftests)."""

from __future__ import annotations

from airflow_insight.emulator import (
    Emulator,
    JobScript,
)

#: 20 lines over about 0.2 s: long enough for faults to hit it mid-run.
SCRIPT = JobScript(
    name="trigger-test",
    queued_seconds=0.02,
    status_step_seconds=0.02,
    log_lines=20,
    lines_per_second=100.0,
    batch_size=2,
    completing_seconds=0.02,
    cancel_seconds=0.02,
)


def connection_json(emulator: Emulator) -> str:
    """The Airflow connection for the emulator, in the JSON form of AIRFLOW_CONN_*."""
    return emulator.airflow_connection_json(
        extra={"connect_timeout_seconds": 2, "read_timeout_seconds": 5}
    )
