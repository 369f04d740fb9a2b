"""Shared helpers of the trigger tests (a uniquely named module: no clash between conftests)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, JobScript
from airflow_insight.hooks.insight import RUN_LOG_PREFIX
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient

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


RUN_LOG_MARK = "[insight.run_log]"


def line_text(record: str) -> str:
    """The forwarded line of a console run-log record: after the level, without the prefix that
    sets run-log lines apart (every forwarded line must carry it)."""
    message = record.split("]", 1)[1].split("[", 1)[0].strip()
    assert message.startswith(RUN_LOG_PREFIX), record
    return message.removeprefix(RUN_LOG_PREFIX)


def submit(emulator: Emulator, job_id: str, **script_changes: Any) -> None:
    """Submit a job over REST with no connection-id (the trigger must SUBSCRIBE to it)."""
    if script_changes:
        emulator.add_script(job_id, dataclasses.replace(SCRIPT, **script_changes))
    settings = ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    with InsightRestClient(settings) as rest:
        rest.submit_job({"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True})


def forwarded(text: str, job_id: str) -> list[str]:
    """The run-log lines of ``job_id`` forwarded as records of the run-log logger, in order."""
    lines = []
    for record in text.splitlines():
        if RUN_LOG_MARK in record and f"{job_id}: run-log line" in record:
            lines.append(line_text(record))
    return lines


def run_log(emulator: Emulator, job_id: str) -> list[str]:
    """The job's whole run log, as the emulator wrote it."""
    return [line.strip() for line in emulator.run_log(job_id)]


async def collect(trigger: BaseTrigger, timeout: float = 15.0) -> list[TriggerEvent]:
    """Every event ``trigger.run()`` yields (bounded)."""
    async with asyncio.timeout(timeout):
        return [event async for event in trigger.run()]


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` is true."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
