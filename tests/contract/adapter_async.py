"""Contract adapter for the asyncio driver (:mod:`airflow_insight.transport.async_driver`).

Interface: see the docstring of ``tests/contract/conftest.py``. Each call runs its own event loop
(``asyncio.run``), as a triggerer would run the driver on its loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from airflow_insight.protocol.events import RunLogLines
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.async_driver import AsyncJobFollower
from airflow_insight.transport.driving import DriverEvent
from airflow_insight.transport.rest import InsightRestClient

#: The adapter logs each event once, as the operator and trigger do (the driver logs none).
_EVENTS = logging.getLogger(f"tests.contract.adapter_{__name__.rsplit('_', 1)[-1]}")


def _log_event(event: DriverEvent) -> None:
    _EVENTS.log(event.log_level, event.describe())


NAME = "async"


def _sink(on_line: Callable[[str], None]) -> Callable[[DriverEvent], None]:
    def forward(event: DriverEvent) -> None:
        if isinstance(event, RunLogLines):
            for line in event.lines:
                on_line(line)
        _log_event(event)

    return forward


def follow_job(
    settings: ConnectionSettings,
    rest: InsightRestClient,
    job_request: Mapping[str, Any],
    payload: bytes | None,
    *,
    config: FollowerConfig,
    on_line: Callable[[str], None],
    timeout_seconds: float,
) -> JobOutcome:
    """Open the socket, submit with its connection-id, follow to the end."""

    async def main() -> JobOutcome | None:
        async with AsyncJobFollower(
            settings, rest, on_event=_sink(on_line), config=config
        ) as driver:
            await driver.open()
            await driver.submit(job_request, payload)
            return await driver.wait(str(job_request["id"]), timeout_seconds=timeout_seconds)

    outcome = asyncio.run(main())
    if outcome is None:
        raise TimeoutError(f"job {job_request['id']!r} did not end in {timeout_seconds} s")
    return outcome


def reattach(
    settings: ConnectionSettings,
    rest: InsightRestClient,
    job_id: str,
    *,
    execution_attempts: int,
    last_run_log_line: int,
    config: FollowerConfig,
    on_line: Callable[[str], None],
    timeout_seconds: float,
) -> JobOutcome:
    """Follow a job submitted elsewhere, resuming after ``last_run_log_line``."""

    async def main() -> JobOutcome | None:
        async with AsyncJobFollower(
            settings, rest, on_event=_sink(on_line), config=config
        ) as driver:
            await driver.open()
            driver.follow(
                job_id, execution_attempts=execution_attempts, last_run_log_line=last_run_log_line
            )
            return await driver.wait(job_id, timeout_seconds=timeout_seconds)

    outcome = asyncio.run(main())
    if outcome is None:
        raise TimeoutError(f"job {job_id!r} did not end in {timeout_seconds} s")
    return outcome
