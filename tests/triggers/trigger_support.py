"""Shared helpers of the trigger tests (a uniquely named module: no clash between conftests)."""

from __future__ import annotations

import json

from airflow_insight.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
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
    return json.dumps(
        {
            "conn_type": "insight",
            "host": emulator.base_url,
            "login": DEMO_CLIENT_ID,
            "password": DEMO_CLIENT_SECRET,
            "extra": {"connect_timeout_seconds": 2, "read_timeout_seconds": 5},
        }
    )
