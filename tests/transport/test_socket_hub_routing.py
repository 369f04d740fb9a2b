"""The socket hub routes each event where the core says (``events.audience``), never by level.

Two watches share one socket of the emulator on 127.0.0.1 port 0: the socket's own news reaches
both, each job's events only its own watch, and what concerns nobody's task log reaches none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from airflow_insight.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
    JobScript,
)
from airflow_insight.protocol import events as ev
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.driving import DriverEvent
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.socket_hub import JobWatch, SocketHub

JOBS = ("route-a", "route-b")
QUICK = JobScript(
    name="quick",
    queued_seconds=0.02,
    status_step_seconds=0.02,
    log_lines=6,
    lines_per_second=200.0,
    batch_size=3,
    completing_seconds=0.02,
)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulator with quick jobs and frequent JSON pings (events for nobody's log)."""
    with Emulator(EmulatorConfig(ping_interval_seconds=0.05)) as running:
        running.add_script("*", QUICK)
        yield running


async def _until_the_end(watch: JobWatch) -> list[DriverEvent]:
    events: list[DriverEvent] = []
    while not events or not isinstance(events[-1], ev.JobFinished | ev.FollowFailed):
        events.append(await watch.next_event())
    return events


def test_socket_news_reaches_every_watch_and_job_news_only_its_own(emulator: Emulator) -> None:
    settings = ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    with InsightRestClient(settings) as rest:
        for job_id in JOBS:
            rest.submit_job({"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True})

    async def follow() -> dict[str, list[DriverEvent]]:
        hub = SocketHub.for_running_loop()
        # Both watches exist before the shared socket opens: both hear of its opening.
        watches = {job_id: hub.watch("insight_default", settings, job_id) for job_id in JOBS}
        try:
            async with asyncio.timeout(30.0):
                ends = await asyncio.gather(*(_until_the_end(w) for w in watches.values()))
        finally:
            for watch in watches.values():
                watch.close()
        assert hub.socket_count == 0  # the last watch closed the shared socket
        return dict(zip(JOBS, ends, strict=True))

    seen = asyncio.run(follow())
    for job_id, events in seen.items():
        connecting = [e for e in events if isinstance(e, ev.ReconnectDue)]
        assert connecting and connecting[0].reconnect is False, events
        assert isinstance(events[-1], ev.JobFinished) and events[-1].job_id == job_id
        audiences = {ev.audience(e) for e in events}
        assert audiences == {job_id, ev.Audience.EVERY_JOB}  # never the other job's
        # Token calls and JSON pings concern no task log: no watch gets them.
        assert not [e for e in events if isinstance(e, ev.TokenRefreshDue | ev.PingAnswered)]
