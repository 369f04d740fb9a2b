"""A watch whose consumer falls far behind a flood stops taking lines (bounded memory) and
leaves the rest to the resume: every line still reaches the task log once, in order."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from trigger_support import SCRIPT, run_log, submit

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator
from airflow_insight.protocol import events as ev
from airflow_insight.protocol import runlog
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.driving import DriverEvent
from airflow_insight.transport.socket_hub import JobWatch, SocketHub

#: Small enough that the flood's second batch overflows a consumer that took nothing yet.
BACKLOG_LINES = 300
FLOOD = dataclasses.replace(SCRIPT, log_lines=2_000, batch_size=250, lines_per_second=20_000.0)


def test_a_consumer_far_behind_stops_at_a_gap_and_the_resume_has_the_rest(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runlog, "WATCH_BACKLOG_LINES", BACKLOG_LINES)
    submit(emulator, "backlog-1", **dataclasses.asdict(FLOOD) | {"name": "backlog"})
    settings = ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)

    async def follow() -> list[DriverEvent]:
        watch = SocketHub.for_running_loop().watch("insight_default", settings, "backlog-1")
        try:
            # The consumer takes nothing until the job ended on the server: a stalled task log.
            async with asyncio.timeout(20.0):
                while emulator.hub.jobs["backlog-1"].status != "COMPLETED":
                    await asyncio.sleep(0.02)
                events = [await watch.next_event()]
                while not isinstance(events[-1], ev.JobFinished | ev.FollowFailed):
                    events.append(await watch.next_event())
        finally:
            watch.close()
        return events

    events = asyncio.run(follow())
    lines = [line for e in events if isinstance(e, ev.RunLogLines) for line in e.lines]
    gaps = [e for e in events if isinstance(e, ev.RunLogGap)]
    full_log = run_log(emulator, "backlog-1")
    assert isinstance(events[-1], ev.JobFinished), events[-1]
    assert len(gaps) == 1, gaps
    # Never more than the bound waited (plus the one batch taken when none waited).
    assert 0 < len(lines) <= BACKLOG_LINES + FLOOD.batch_size
    assert [line.strip() for line in lines] == full_log[: len(lines)]
    assert gaps[0].first_line == len(lines)
    # The resume reads the rest over REST from the last line this watch got.
    assert len(full_log) == FLOOD.log_lines > len(lines)


def test_a_watch_that_keeps_up_is_not_stopped_by_the_others_backlog(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket-wide bound stops the watches with a backlog, never one that keeps up."""
    monkeypatch.setattr(runlog, "WATCH_BACKLOG_LINES", 10 * BACKLOG_LINES)
    monkeypatch.setattr(runlog, "SOCKET_BACKLOG_LINES", BACKLOG_LINES)
    for job in ("stalled-1", "keeping-up-1"):
        submit(emulator, job, **dataclasses.asdict(FLOOD) | {"name": job})
    settings = ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)

    async def drain(watch: JobWatch) -> list[DriverEvent]:
        events: list[DriverEvent] = []
        while not events or not isinstance(events[-1], ev.JobFinished | ev.FollowFailed):
            events.append(await watch.next_event())
        return events

    async def follow() -> tuple[list[DriverEvent], list[DriverEvent]]:
        hub = SocketHub.for_running_loop()
        stalled = hub.watch("insight_default", settings, "stalled-1")
        keeping_up = hub.watch("insight_default", settings, "keeping-up-1")
        try:
            async with asyncio.timeout(20.0):
                kept = await drain(keeping_up)
                while emulator.hub.jobs["stalled-1"].status != "COMPLETED":
                    await asyncio.sleep(0.02)
                return await drain(stalled), kept
        finally:
            stalled.close()
            keeping_up.close()

    stalled_events, kept_events = asyncio.run(follow())
    kept = [line for e in kept_events if isinstance(e, ev.RunLogLines) for line in e.lines]
    assert [line.strip() for line in kept] == run_log(emulator, "keeping-up-1")
    assert not [e for e in kept_events if isinstance(e, ev.RunLogGap)]
    assert [e for e in stalled_events if isinstance(e, ev.RunLogGap)], "nothing was stopped"
