"""Shared data of the sensor tests (a uniquely named module: no clash between conftests)."""

from __future__ import annotations

from airflow_insight.emulator import JobScript

#: A quick job: 8 lines, done in well under a second.
SENSOR_SCRIPT = JobScript(
    name="sensor-test",
    queued_seconds=0.02,
    status_step_seconds=0.02,
    log_lines=8,
    lines_per_second=100.0,
    batch_size=2,
    completing_seconds=0.02,
)
